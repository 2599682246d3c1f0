"""The delivery loop's metrics: retries, 429s, outcomes and submit → delivered, each counted once."""

from datetime import timedelta

import pytest

from bot.core.delivery import DeliveryLoop
from bot.core.service import SongService
from tests.bot.core.test_delivery import USER, Clock, Recorder, complete, submit
from tests.helpers import make_settings


@pytest.fixture
def service(tmp_path):
    return SongService.from_settings(make_settings(tmp_path))


class RateLimited(Exception):
    status = 429  # what discord.HTTPException carries; python-telegram-bot raises RetryAfter


async def test_retries_429s_and_outcomes_are_counted_once(service):
    done, cancelled = await submit(service), await submit(service)
    await service.cancel(USER, cancelled.id)
    complete(service, done.id)
    recorder = Recorder(fail_results=2)
    errors = iter([RateLimited("slow down"), ConnectionError("down")])

    async def refuse(delivery, result):
        if recorder.fail_results:
            recorder.fail_results -= 1
            raise next(errors)
        recorder.calls.append(("result", delivery.job_id, result.caption))

    recorder.send_result = refuse
    clock = Clock(service)
    loop = DeliveryLoop(service, clock=clock)
    loop.register(recorder)
    for _ in range(3):
        await loop.run_once()
        clock.now += timedelta(hours=1)
    metrics = service.metrics.registry

    def sample(name, **labels):
        return metrics.get_sample_value(name, {"platform": "fake", **labels}) or 0

    assert sample("songbot_delivery_retries_total") == 2 and sample("songbot_platform_rate_limited_total") == 1
    assert sample("songbot_jobs_submitted_total", kind="song") == 2
    assert sample("songbot_jobs_finished_total", kind="song", outcome="succeeded") == 1
    assert sample("songbot_jobs_finished_total", kind="song", outcome="cancelled") == 1
    assert sample("songbot_job_submit_to_delivered_seconds_count", kind="song") == 2
    await loop.run_once()  # nothing left: nothing counted again
    assert sample("songbot_jobs_finished_total", kind="song", outcome="succeeded") == 1
