"""Expired uploads are deleted, except the sources of jobs still waiting or running; track files no row names
are deleted after a grace (clock passed in)."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from storage.blobs.local import Blobs
from storage.blobs.retention import ORPHAN_GRACE, OrphanSweep, UploadRetention
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import JobSpec
from storage.contract.types import NewTrack, QueueLimits
from storage.contract.types import UserRef as Ref
from storage.queue.accounts import Accounts
from storage.queue.jobs import Queue

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


def recorded_track(queue, db, blob_path: str, latents_blob: str | None, now: datetime) -> int:
    """A finished job whose track row names `blob_path` (and `latents_blob`)."""
    user = Accounts(db).ensure(Ref("console", "bo", "Bo"), now).id
    job = queue.submit(user, "song", JobSpec(caption="rain", duration_s=12), 7, now)
    [claimed] = queue.claim("engine", 1, now, 30)
    track = NewTrack(
        blob_path,
        12.0,
        7,
        "0" * 64,
        "Rain",
        "rain",
        "",
        TrackMeta(),
        ModelInfo(backend="sketch"),
        latents_blob=latents_blob,
    )
    queue.complete(claimed, "engine", track, now)
    return job.id


def stored_file(blobs, relative: str, age: timedelta) -> str:
    """A file in the blob folder under `relative`, written `age` before NOW."""
    path = Path(blobs.path(relative))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ID3 mp3 or npy bytes")
    written = (NOW - age).replace(tzinfo=UTC).timestamp()
    os.utime(path, (written, written))
    return relative


def test_a_track_file_without_a_row_is_swept_after_the_grace_and_one_with_a_row_is_kept(db, blobs, queue):
    old, young = ORPHAN_GRACE + timedelta(hours=1), ORPHAN_GRACE - timedelta(hours=1)
    kept = [
        stored_file(blobs, "tracks/0000/5-1.mp3", old),
        stored_file(blobs, "latents/0000/5-1.npy", old),
        stored_file(blobs, "tracks/0000/5-1.fit8000000.mp3", old),  # the bot's smaller copy of a kept song
        stored_file(blobs, "tracks/0000/6-1.mp3", young),  # its row may be on its way
        stored_file(blobs, "tracks/0000/.6-2.mp3.abc.tmp.mp3", old),  # scratch: the engine's own sweep
    ]
    recorded_track(queue, db, "tracks/0000/5-1.mp3", "latents/0000/5-1.npy", NOW)
    orphans = [
        stored_file(blobs, "tracks/0000/5-2.mp3", old),  # a rerun's earlier attempt, never recorded
        stored_file(blobs, "latents/0000/5-2.npy", old),
        stored_file(blobs, "tracks/0000/5-2.fit8000000.mp3", old),
    ]
    assert OrphanSweep(db, blobs).sweep(NOW) == sorted(orphans)
    assert all(blobs.path(path).exists() for path in kept)
    assert not any(blobs.path(path).exists() for path in orphans)
    assert OrphanSweep(db, blobs).sweep(NOW) == []


def test_orphans_are_swept_with_real_arrays_too(db, blobs, queue):
    relative = blobs.put_array("tracks/0001/1000-1.mp3", np.zeros((4, 64), np.float32))
    assert relative == "tracks/0001/1000-1.npy"
    assert OrphanSweep(db, blobs).sweep(datetime.now(UTC).replace(tzinfo=None) + ORPHAN_GRACE * 2) == [relative]
