"""The delivery loop and best=N: one status message for the takes, then exactly one song, the best one."""

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.core.delivery import DeliveryLoop
from bot.core.parser import SongRequest
from storage.contract.results import TakeScore
from storage.contract.types import CANCELLED, DeliveryTarget
from tests.bot.core.test_delivery import USER, Recorder, rain_track, service
from tests.helpers import Killed, ManualClock

__all__ = ["service"]


async def submit_best(service, n=3):
    return await service.submit_songs(
        USER, SongRequest("rain", duration_s=10, seed=40, best=n), DeliveryTarget("fake", "chat")
    )


def make(service, job_id, total, clock):
    [job] = service.queue.claim("engine", 1, clock(), 30)
    assert job.id == job_id
    score = TakeScore(total=total, conditions={"caption": total}, best_of=job.spec.best_of)
    service.queue.complete(job, "engine", replace(rain_track(job.seed), score=score), clock())


def posted(recorder):
    return [call for call in recorder.calls if call[0] in ("result", "error", "notice")]


async def test_one_status_message_then_only_the_best_take(service):
    jobs = await submit_best(service)
    ids = [job.id for job in jobs]
    clock = ManualClock(service.clock())
    recorder = Recorder()
    loop = DeliveryLoop(service, clock=clock)
    loop.register(recorder)
    await loop.run_once()
    assert recorder.calls == [
        ("status", ids[0], f"🏅 Best of 3: 0 of 3 takes made\n⏳ #{ids[0]} queued (position 1, about 0:15)")
    ]
    make(service, ids[0], 0.31, clock)
    clock.now += timedelta(seconds=4)
    await loop.run_once()
    assert recorder.calls[-1] == (
        "status",
        ids[0],
        f"🏅 Best of 3: 1 of 3 takes made\n⏳ #{ids[1]} queued (position 1, about 0:15)",
    )
    make(service, ids[1], 0.77, clock)
    clock.now += timedelta(seconds=4)
    await loop.run_once()
    assert posted(recorder) == [], "a take is still open"
    make(service, ids[2], 0.52, clock)
    clock.now += timedelta(seconds=4)
    await loop.run_once()
    await loop.run_once()
    [(kind, job_id, caption)] = posted(recorder)
    assert kind == "result" and job_id == ids[1]  # the highest stored score
    assert "🏆 best of 3 · score 0.77" in caption and f"#{ids[1]} · seed 41" in caption
    assert {call[1] for call in recorder.calls} == {ids[0], ids[1]}  # the group's one row, moved to the winner
    shown = [service.library.get(job_id).score for job_id in ids]
    assert [(score.take, score.chosen) for score in shown] == [(1, False), (2, True), (3, False)]
    assert max(shown, key=lambda score: score.total).chosen


async def test_a_failed_take_does_not_block_the_group(service):
    jobs = await submit_best(service, 2)
    clock = ManualClock(service.clock())
    [first] = service.queue.claim("engine", 1, clock(), 30)
    service.queue.fail(first, "engine", "It broke.", clock())
    make(service, jobs[1].id, 0.1, clock)
    recorder = Recorder()
    loop = DeliveryLoop(service, clock=clock)
    loop.register(recorder)
    await loop.run_once()
    [(kind, job_id, caption)] = posted(recorder)
    assert (kind, job_id) == ("result", jobs[1].id) and "🏆 best of 2 · score 0.10" in caption


async def test_a_group_without_a_song_gets_one_sentence(service):
    jobs = await submit_best(service, 2)
    await service.cancel(USER, jobs[0].id)  # the group's id: both of its waiting takes go
    assert {service.queue.get(job.id).status for job in jobs} == {CANCELLED}
    recorder = Recorder()
    loop = DeliveryLoop(service)
    loop.register(recorder)
    await loop.run_once()
    assert posted(recorder) == [("error", jobs[0].id, f"🚫 Song #{jobs[0].id} was cancelled.")]


async def test_a_restart_between_the_choice_and_the_post_posts_the_winner_once(service, monkeypatch):
    jobs = await submit_best(service)
    ids = [job.id for job in jobs]
    clock = ManualClock(service.clock())
    for job_id, total in zip(ids, (0.2, 0.1, 0.6), strict=True):
        make(service, job_id, total, clock)
    recorder = Recorder()
    dying = DeliveryLoop(service, owner="bot-a", clock=clock)
    dying.register(recorder)
    get = service.queue.get

    def dies(job_id):
        raise Killed()  # the process ends after the choice was committed, before anything was posted

    monkeypatch.setattr(service.queue, "get", dies)
    with pytest.raises(Killed):
        await dying.run_once()
    monkeypatch.setattr(service.queue, "get", get)
    assert posted(recorder) == []
    clock.now += timedelta(seconds=service.settings.delivery_lease_s + 1)  # the dead process's lease runs out
    for owner in ("bot-b", "bot-c"):
        loop = DeliveryLoop(service, owner=owner, clock=clock)
        loop.register(recorder)
        await loop.run_once()
        await loop.run_once()
    [(kind, job_id, caption)] = posted(recorder)
    assert (kind, job_id) == ("result", ids[2]) and "🏆 best of 3 · score 0.60" in caption
    assert [service.library.get(job_id).score.chosen for job_id in ids] == [False, False, True]
