"""The delivery loop against a recording messenger: status edits, one result, retries."""

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.core.delivery import MAX_UPLOAD_RESENDS, REPEAT_NOTE, DeliveryLoop, PostUncertain, with_repeat_note
from bot.core.parser import SongRequest
from bot.core.service import SongService
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import JobSpec
from storage.contract.types import DeliveryTarget, NewTrack, UserRef
from storage.models import deliveries_table
from storage.ops.repeats import RepeatedErrors
from tests.helpers import Killed, make_settings

USER = UserRef("fake", "1", "Ann")


class Recorder:
    platform = "fake"

    def __init__(self, fail_results: int = 0):
        self.calls: list[tuple[str, int, str]] = []
        self.fail_results = fail_results

    async def show_status(self, delivery, text):
        self.calls.append(("status", delivery.job_id, text))
        return f"msg-{delivery.job_id}"

    async def send_result(self, delivery, result):
        if self.fail_results:
            self.fail_results -= 1
            raise ConnectionError("platform down")
        self.calls.append(("result", delivery.job_id, result.caption))

    async def send_error(self, delivery, text):
        self.calls.append(("error", delivery.job_id, text))

    async def send_notice(self, delivery, text):
        self.calls.append(("notice", delivery.job_id, text))


class Clock:
    def __init__(self, service):
        self.now = service.clock()

    def __call__(self):
        return self.now


@pytest.fixture
def service(tmp_path):
    return SongService.from_settings(make_settings(tmp_path, status_edit_interval_s=3.0))


async def submit(service):
    return await service.submit_song(USER, SongRequest("rain", duration_s=10), DeliveryTarget("fake", "chat"))


def rain_track(seed):
    return NewTrack(
        blob_path="tracks/x.mp3",
        duration_s=10,
        seed=seed,
        sha256="0" * 64,
        title="Rain",
        caption="rain",
        lyrics="",
        meta=TrackMeta(bpm=90, key="C major"),
        model=ModelInfo(),
    )


def complete(service, job_id):
    [job] = service.queue.claim("engine", 1, service.clock(), 30)
    assert job.id == job_id
    service.queue.complete(job, "engine", rain_track(job.seed), service.clock())


async def test_status_is_shown_once_then_result_once(service):
    job = await submit(service)
    recorder = Recorder()
    clock = Clock(service)
    loop = DeliveryLoop(service, clock=clock)
    loop.register(recorder)
    await loop.run_once()
    await loop.run_once()
    # ETA: 10 s of audio × 1.5 for LM planning × 1 s per unit (no history yet).
    assert recorder.calls == [("status", job.id, f"⏳ #{job.id} queued (position 1, about 0:15)")]
    assert service.outbox.for_job(job.id).status_message_id == f"msg-{job.id}"
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    service.queue.report(claimed, "engine", "generating", 40, service.clock(), 30)
    await loop.run_once()
    assert len(recorder.calls) == 1, "edits are throttled"
    clock.now += timedelta(seconds=4)
    await loop.run_once()
    assert recorder.calls[-1] == ("status", job.id, f"🎶 #{job.id} generating… 40%")
    service.queue.complete(claimed, "engine", rain_track(job.seed), service.clock())
    await loop.run_once()
    await loop.run_once()
    results = [call for call in recorder.calls if call[0] == "result"]
    assert len(results) == 1 and f"#{job.id} · seed {job.seed}" in results[0][2] and "90 bpm · C major" in results[0][2]


async def test_failed_result_is_retried_and_two_loops_post_once(service):
    job = await submit(service)
    complete(service, job.id)
    recorder = Recorder(fail_results=1)
    clock = Clock(service)
    first, second = DeliveryLoop(service, clock=clock), DeliveryLoop(service, clock=clock)
    first.register(recorder)
    second.register(recorder)
    await first.run_once()
    assert recorder.calls == []
    assert service.outbox.for_job(job.id).attempts == 1
    clock.now += timedelta(seconds=3)
    await first.run_once()
    await second.run_once()
    clock.now += timedelta(hours=1)
    await second.run_once()
    await first.run_once()
    assert [call[0] for call in recorder.calls] == ["result"]


async def test_cancelled_and_failed_jobs_get_one_sentence(service):
    job = await submit(service)
    await service.cancel(USER, job.id)
    other = await submit(service)
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    service.queue.fail(claimed, "engine", "The source was too quiet.", service.clock())
    recorder = Recorder()
    loop = DeliveryLoop(service)
    loop.register(recorder)
    await loop.run_once()
    assert ("error", job.id, f"🚫 Song #{job.id} was cancelled.") in recorder.calls
    assert ("error", other.id, f"⚠️ Song #{other.id} failed: The source was too quiet.") in recorder.calls


async def test_a_finished_job_is_delivered_in_the_first_pass_behind_500_waiting_ones(tmp_path):
    service = SongService.from_settings(
        make_settings(tmp_path, max_pending_per_user=500, max_queued_total=500, daily_quota=0)
    )
    user = service.accounts.ensure(USER, service.clock()).id
    target = DeliveryTarget("fake", "chat")
    ids = [
        service.queue.submit(user, "song", JobSpec(caption="x", duration_s=10), 7, service.clock(), target).id
        for _ in range(500)
    ]
    service.queue.cancel(ids[-1], None, service.clock())
    recorder = Recorder()
    loop = DeliveryLoop(service, clock=Clock(service))
    loop.register(recorder)
    await loop.run_once()
    assert ("error", ids[-1], f"🚫 Song #{ids[-1]} was cancelled.") in recorder.calls


async def test_the_throttle_is_checked_before_the_status_text_is_built(service, monkeypatch):
    job = await submit(service)
    built: list[int] = []
    status_text = service.status_text
    monkeypatch.setattr(service, "status_text", lambda job: built.append(job.id) or status_text(job))
    recorder = Recorder()
    clock = Clock(service)
    loop = DeliveryLoop(service, clock=clock)
    loop.register(recorder)
    await loop.run_once()
    assert built == [job.id] and len(recorder.calls) == 1
    clock.now += timedelta(seconds=1)
    await loop.run_once()
    assert built == [job.id], "within the 3 s interval no text is built"
    clock.now += timedelta(seconds=3)
    await loop.run_once()
    assert built == [job.id, job.id] and len(recorder.calls) == 1, "built again, but the same text is not resent"


async def test_a_failed_post_stores_its_error_without_the_bot_token(tmp_path):
    token = "4242424242:" + "fake-test-token-" * 2 + "xyz"  # a Telegram token's shape, no real token
    service = SongService.from_settings(make_settings(tmp_path, telegram_token=token))
    messenger = Recorder(fail_results=1)

    async def refused(delivery, result):
        raise ConnectionError(f"POST https://api.telegram.org/bot{token}/sendAudio refused")

    messenger.send_result = refused
    loop = DeliveryLoop(service)
    loop.register(messenger)
    job = await submit(service)
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    service.queue.complete(claimed, "engine", rain_track(claimed.seed), service.clock())
    await loop.run_once()
    with service.queue.engine.begin() as conn:
        stored = conn.execute(select(deliveries_table.c.error).where(deliveries_table.c.job_id == job.id)).scalar()
    assert stored is not None and "refused" in stored and token not in stored and "4242424242" not in stored


async def deliver_and_die(service, clock, recorder, owner, monkeypatch):
    """One pass of a loop whose process dies right after the platform took the post."""
    loop = DeliveryLoop(service, owner=owner, clock=clock)
    loop.register(recorder)
    mark_done = service.outbox.mark_done

    def killed(*args):
        raise Killed

    monkeypatch.setattr(service.outbox, "mark_done", killed)
    with pytest.raises(Killed):
        await loop.run_once()
    monkeypatch.setattr(service.outbox, "mark_done", mark_done)
    clock.now += timedelta(seconds=service.settings.delivery_lease_s + 1)  # the dead process's lease runs out


async def test_a_post_interrupted_by_a_crash_is_sent_again_once(service, monkeypatch):
    # A platform without an idempotency key (Telegram): the attempt was recorded before the post, so
    # the next process knows it may be a repeat, and sends it one more time.
    job = await submit(service)
    complete(service, job.id)
    recorder, clock = Recorder(), Clock(service)
    await deliver_and_die(service, clock, recorder, "bot-1", monkeypatch)
    assert service.outbox.for_job(job.id).sending_at is not None
    loop = DeliveryLoop(service, owner="bot-2", clock=clock)
    loop.register(recorder)
    await loop.run_once()
    delivery = service.outbox.for_job(job.id)
    assert [call[0] for call in recorder.calls] == ["result", "result"]
    assert (delivery.state, delivery.resends) == ("done", 1)


@pytest.mark.parametrize("interruptions", [1, 2, 5])
async def test_a_post_interrupted_any_number_of_times_ends_delivered_or_told(service, monkeypatch, interruptions):
    # Each interrupted process may or may not have posted: the next one posts again, saying it may be a
    # repeat; past MAX_UPLOAD_RESENDS the song's upload gives way to a sentence that points to /history.
    job = await submit(service)
    complete(service, job.id)
    recorder, clock = Recorder(), Clock(service)
    for n in range(interruptions):
        await deliver_and_die(service, clock, recorder, f"bot-{n}", monkeypatch)
    loop = DeliveryLoop(service, owner="bot-last", clock=clock)
    loop.register(recorder)
    await loop.run_once()
    await loop.run_once()
    delivery = service.outbox.for_job(job.id)
    kind, _, text = recorder.calls[-1]
    if interruptions <= MAX_UPLOAD_RESENDS:
        assert (kind, delivery.state) == ("result", "done")
        assert [call[0] for call in recorder.calls] == ["result"] * (interruptions + 1)
    else:
        assert (kind, delivery.state) == ("notice", "told") and "/history" in text
    assert delivery.resends == interruptions


async def test_every_resend_is_marked_as_a_possible_repeat(service, monkeypatch):
    job = await submit(service)
    complete(service, job.id)
    recorder, clock = Recorder(), Clock(service)
    recorder.resends = []
    send_result = recorder.send_result

    async def noting(delivery, result):
        recorder.resends.append(with_repeat_note(delivery, "song").startswith(REPEAT_NOTE))
        await send_result(delivery, result)

    recorder.send_result = noting
    await deliver_and_die(service, clock, recorder, "bot-1", monkeypatch)
    loop = DeliveryLoop(service, owner="bot-2", clock=clock)
    loop.register(recorder)
    await loop.run_once()
    assert recorder.resends == [False, True]


async def test_a_post_that_timed_out_is_resent_as_a_possible_repeat(service):
    job = await submit(service)
    complete(service, job.id)
    recorder, clock = Recorder(), Clock(service)
    send_result = recorder.send_result
    seen = []

    async def times_out_once(delivery, result):
        seen.append(delivery.resends)
        if len(seen) == 1:
            raise PostUncertain("TimedOut")
        await send_result(delivery, result)

    recorder.send_result = times_out_once
    loop = DeliveryLoop(service, clock=clock)
    loop.register(recorder)
    await loop.run_once()
    assert service.outbox.for_job(job.id).sending_at is not None  # the platform may have it
    clock.now += timedelta(seconds=3)
    await loop.run_once()
    assert seen == [0, 1] and service.outbox.for_job(job.id).state == "done"


async def test_a_refused_post_is_retried_as_no_resend(service):
    job = await submit(service)
    complete(service, job.id)
    recorder, clock = Recorder(fail_results=1), Clock(service)
    loop = DeliveryLoop(service, clock=clock)
    loop.register(recorder)
    await loop.run_once()
    assert service.outbox.for_job(job.id).sending_at is None  # the platform said no: nothing was posted
    clock.now += timedelta(seconds=3)
    await loop.run_once()
    delivery = service.outbox.for_job(job.id)
    assert [call[0] for call in recorder.calls] == ["result"] and (delivery.state, delivery.resends) == ("done", 0)


async def test_a_database_outage_is_logged_once_not_per_pass(service, caplog):
    caplog.set_level(logging.INFO, logger="songbot.delivery")
    loop = DeliveryLoop(service)
    loop.pass_errors = RepeatedErrors(logging.getLogger("songbot.delivery"), "delivery pass", clock=lambda: 0.0)
    stop, passes = asyncio.Event(), []

    async def database_down():
        passes.append(1)
        if len(passes) == 20:
            stop.set()
        raise ConnectionRefusedError(111, "Connection refused")

    loop.run_once = database_down
    await loop.run(stop)
    assert len(passes) == 20
    assert [r.getMessage() for r in caplog.records if "delivery pass" in r.getMessage()] == ["delivery pass failed"]
