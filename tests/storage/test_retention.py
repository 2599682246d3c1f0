"""Expired uploads are deleted, except the sources of jobs still waiting or running (clock passed in)."""

import os
from datetime import UTC, datetime, timedelta

import pytest

from storage.accounts import Accounts
from storage.blobs import Blobs
from storage.queue import Queue
from storage.retention import UploadRetention
from storage.spec import JobSpec
from storage.types import QueueLimits
from storage.types import UserRef as Ref

NOW = datetime(2026, 11, 21, 12, 0, 0)
WEEK_S = 7 * 86400


@pytest.fixture
def blobs(tmp_path):
    return Blobs(tmp_path / "blobs")


@pytest.fixture
def queue(db):
    return Queue(db, QueueLimits(max_pending_per_user=10, daily_quota=0, max_queued_total=100))


def upload(blobs, age: timedelta) -> str:
    relative = blobs.put_upload(b"RIFF....", ".wav")
    written = (NOW - age).replace(tzinfo=UTC).timestamp()
    os.utime(blobs.path(relative), (written, written))
    return relative


def cover_of(queue, db, source: str) -> int:
    user = Accounts(db).ensure(Ref("console", "ann", "Ann"), NOW).id
    return queue.submit(user, "cover", JobSpec(caption="jazz", duration_s=12), 7, NOW, source_blob=source).id


def test_uploads_older_than_the_setting_are_deleted(db, blobs):
    old, fresh = upload(blobs, timedelta(days=8)), upload(blobs, timedelta(days=6))
    retention = UploadRetention(db, blobs, keep_s=WEEK_S)
    assert retention.sweep(NOW) == [old]
    assert not blobs.exists(old) and blobs.exists(fresh)
    assert retention.sweep(NOW) == []
    assert retention.sweep(NOW + timedelta(days=2)) == [fresh]


def test_a_waiting_job_keeps_its_source_until_it_is_finished(db, blobs, queue):
    source = upload(blobs, timedelta(days=30))
    job_id = cover_of(queue, db, source)
    retention = UploadRetention(db, blobs, keep_s=WEEK_S)
    assert retention.sweep(NOW) == [] and blobs.exists(source)
    queue.cancel(job_id, None, NOW)
    assert retention.sweep(NOW) == [source] and not blobs.exists(source)


def test_zero_days_keeps_uploads_for_ever(db, blobs):
    source = upload(blobs, timedelta(days=3650))
    assert UploadRetention(db, blobs, keep_s=None).sweep(NOW) == []
    assert blobs.exists(source)


def test_tracks_are_never_swept_but_a_half_written_upload_is(db, blobs):
    track = blobs.root / blobs.track_relative(1, 1)
    track.parent.mkdir(parents=True)
    track.write_bytes(b"mp3")
    scratch = blobs.root / "uploads" / ".x.wav.tmp"  # left by a crash during put_upload
    scratch.write_bytes(b"partial")
    for path in (track, scratch):
        os.utime(path, (0, 0))
    assert UploadRetention(db, blobs, keep_s=WEEK_S).sweep(NOW) == ["uploads/.x.wav.tmp"]
    assert track.exists() and not scratch.exists()
