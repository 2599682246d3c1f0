"""`timing` jobs in the queue (SQLite, and PostgreSQL where one answers): priced cheap, completed without a
track, fenced like a song, the timing stored on the timed song's track, and outside the daily quota."""

from datetime import datetime

import pytest

from storage.contract.errors import LeaseLost, LimitError
from storage.contract.results import LyricTiming, ModelInfo, TimedLine, TimingResult, TrackMeta
from storage.contract.spec import JobSpec
from storage.contract.types import SUCCEEDED, NewTrack, QueueLimits, UserRef
from storage.queue import fairness
from storage.queue.accounts import Accounts
from storage.queue.jobs import Queue
from storage.queue.library import Library

T0 = datetime(2026, 12, 7, 12, 0, 0)
TIMING = LyricTiming(lines=(TimedLine(start_s=1.0, end_s=2.0, text="la la"),))


@pytest.fixture
def queue(db):
    return Queue(db, QueueLimits(daily_quota=2, max_pending_per_user=10))


def song(queue: Queue, uid: int) -> int:
    job = queue.submit(uid, "song", JobSpec(caption="c", lyrics="la la", duration_s=10.0), 1, T0)
    [claimed] = queue.claim("w", 1, T0, 30)
    stored = NewTrack("tracks/1.mp3", 10.0, 1, "0" * 64, "T", "c", "la la", TrackMeta(), ModelInfo(backend="acestep"))
    queue.complete(claimed, "w", stored, T0)
    return job.id


def test_a_timing_job_is_cheap_fenced_and_stores_the_timing_on_its_song(queue, db):
    uid = Accounts(db).ensure(UserRef("console", "a"), T0).id
    song_id = song(queue, uid)
    job = queue.submit(uid, "timing", JobSpec(caption="c", lyrics="la la", duration_s=10.0), 1, T0, parent_id=song_id)
    assert job.cost == fairness.TRACKLESS_COSTS["timing"] and not job.makes_track
    [claimed] = queue.claim("w", 1, T0, 30)
    with pytest.raises(LeaseLost):
        queue.complete_timing(claimed, "another engine", TIMING, T0)
    assert Library(db).get(song_id).timing is None
    queue.complete_timing(claimed, "w", TIMING, T0)
    done = queue.get(job.id)
    assert done.status == SUCCEEDED and TimingResult.from_stored(done.result) == TimingResult(song_id=song_id, lines=1)
    assert Library(db).get(song_id).timing == TIMING and Library(db).get(job.id) is None


def test_no_sung_lines_leave_the_song_as_it_was(queue, db):
    uid = Accounts(db).ensure(UserRef("console", "b"), T0).id
    song_id = song(queue, uid)
    queue.submit(uid, "timing", JobSpec(caption="c", duration_s=10.0), 1, T0, parent_id=song_id)
    [claimed] = queue.claim("w", 1, T0, 30)
    queue.complete_timing(claimed, "w", None, T0)
    assert TimingResult.from_stored(queue.get(claimed.id).result).lines == 0
    assert Library(db).get(song_id).timing is None


def test_the_daily_quota_counts_songs_not_timings(queue, db):
    uid = Accounts(db).ensure(UserRef("console", "c"), T0).id
    song_id = song(queue, uid)
    for _ in range(2):
        queue.submit(uid, "timing", JobSpec(caption="c", duration_s=10.0), 1, T0, parent_id=song_id)
    queue.submit(uid, "song", JobSpec(caption="d", duration_s=10.0), 1, T0)  # the second of two songs today
    with pytest.raises(LimitError, match="for today"):
        queue.submit(uid, "song", JobSpec(caption="e", duration_s=10.0), 1, T0)


def test_any_trackless_job_can_succeed_with_its_result_fenced(queue, db):
    uid = Accounts(db).ensure(UserRef("console", "d"), T0).id
    job = queue.submit(uid, "timing", JobSpec(caption="c", duration_s=10.0), 1, T0, parent_id=1)
    [claimed] = queue.claim("w", 1, T0, 30)
    with pytest.raises(LeaseLost):
        queue.complete_result(claimed, "another engine", TimingResult(song_id=1), T0)
    queue.complete_result(claimed, "w", TimingResult(song_id=1), T0)
    assert queue.get(job.id).status == SUCCEEDED and queue.get(job.id).result == {"song_id": 1, "lines": 0}
