"""The object-store blobs against an S3-compatible server on loopback (moto), retention included."""

import hashlib
import os
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from storage.blobs.retention import ORPHAN_GRACE, OrphanSweep, UploadRetention
from storage.blobs.s3 import S3Blobs, parse_blob_url
from storage.blobs.stores import open_blobs
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import JobSpec
from storage.contract.types import NewTrack, QueueLimits
from storage.contract.types import UserRef as Ref
from storage.queue.accounts import Accounts
from storage.queue.jobs import Queue
from tests.helpers import make_settings
from tests.s3server import ACCESS, s3_server

WEEK_S = 7 * 86400


@pytest.fixture(scope="module")
def server():
    with s3_server() as found:
        yield found


@pytest.fixture
def blobs(server, tmp_path):
    return S3Blobs(server.client(), server.bucket, f"t-{os.urandom(4).hex()}/songs", tmp_path / "work")


def test_an_upload_round_trips_under_the_prefix(blobs, server):
    relative = blobs.put_upload(b"RIFF-data", ".wav")
    assert relative.startswith("uploads/") and relative.endswith(".wav")
    assert blobs.key(relative) in server.object_keys()
    assert blobs.exists(relative) and blobs.read_bytes(relative) == b"RIFF-data"
    assert [path for path, _ in blobs.uploads()] == [relative]
    blobs.delete(relative)
    assert not blobs.exists(relative)
    blobs.delete(relative)  # twice is fine: two bot processes may sweep at once


def test_a_vanished_object_reads_as_a_missing_file(blobs):
    """The engine tells a swept upload by FileNotFoundError, whatever the store."""
    relative = blobs.put_upload(b"RIFF-data", ".wav")
    blobs.delete(relative)
    with pytest.raises(FileNotFoundError):
        blobs.read_bytes(relative)


def test_scratch_files_are_named_for_the_stale_sweep(blobs):
    temp = blobs.temp_path(blobs.track_relative(5, 1))
    assert temp.parent == blobs.scratch_root()
    assert temp.match(".*.tmp.mp3")  # engine.scratch.PATTERN: a killed engine's leftovers are swept


def test_a_track_is_invisible_until_committed_and_then_complete(blobs, server):
    relative = blobs.track_relative(1234, 2)
    temp = blobs.temp_path(relative)
    data = os.urandom(9 * 1024 * 1024)  # above boto3's 8 MB threshold: a multipart upload
    temp.write_bytes(data)
    assert not blobs.exists(relative)  # the scratch file is local; nothing under the real key yet
    blobs.commit(temp, relative)
    assert not temp.exists()
    local = blobs.local_path(relative)
    assert hashlib.sha256(local.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not list(local.parent.glob(".*.part"))  # the download went to a temporary name first
    assert blobs.local_path(relative) == local  # cached


def test_a_failed_upload_leaves_no_object(blobs, monkeypatch):
    relative = blobs.track_relative(7, 1)
    temp = blobs.temp_path(relative)
    temp.write_bytes(b"mp3")

    def broken(*_args, **_kwargs):
        raise ConnectionError("the store went away")

    monkeypatch.setattr(blobs.client, "upload_file", broken)
    with pytest.raises(ConnectionError):
        blobs.commit(temp, relative)
    monkeypatch.undo()
    assert not blobs.exists(relative) and not temp.exists()


def test_retention_deletes_expired_uploads_except_a_waiting_jobs_source(blobs, db):
    kept, swept = blobs.put_upload(b"a", ".wav"), blobs.put_upload(b"b", ".wav")
    user = Accounts(db).ensure(Ref("console", "ann", "Ann"), datetime(2026, 1, 1)).id
    queue = Queue(db, QueueLimits(max_pending_per_user=10, daily_quota=0))
    now = datetime.now(UTC).replace(tzinfo=None)
    queue.submit(user, "cover", JobSpec(caption="jazz", duration_s=12), 7, now, source_blob=kept)
    retention = UploadRetention(db, blobs, keep_s=WEEK_S)
    assert retention.sweep(now) == []  # written just now
    assert retention.sweep(now + timedelta(days=8)) == [swept]
    assert blobs.exists(kept) and not blobs.exists(swept)


def committed(blobs, relative):
    temp = blobs.temp_path(relative)
    temp.write_bytes(b"ID3 mp3 bytes")
    blobs.commit(temp, relative)
    return relative


def test_a_track_object_without_a_row_is_swept_after_the_grace_and_one_with_a_row_is_kept(blobs, db):
    recorded, orphan = committed(blobs, "tracks/0000/8-1.mp3"), committed(blobs, "tracks/0000/8-2.mp3")
    latents = blobs.put_array("latents/0000/8-2.mp3", np.zeros((2, 64), np.float32))
    now = datetime.now(UTC).replace(tzinfo=None)
    user = Accounts(db).ensure(Ref("console", "ann", "Ann"), now).id
    queue = Queue(db, QueueLimits(max_pending_per_user=10, daily_quota=0))
    queue.submit(user, "song", JobSpec(caption="jazz", duration_s=12), 7, now)
    [claimed] = queue.claim("engine", 1, now, 30)
    queue.complete(
        claimed,
        "engine",
        NewTrack(recorded, 12.0, 7, "0" * 64, "Jazz", "jazz", "", TrackMeta(), ModelInfo(backend="sketch")),
        now,
    )
    sweep = OrphanSweep(db, blobs)
    assert sweep.sweep(now) == []  # younger than the grace
    assert sweep.sweep(now + ORPHAN_GRACE + timedelta(hours=1)) == sorted([orphan, latents])
    assert blobs.exists(recorded) and not blobs.exists(orphan) and not blobs.exists(latents)


def test_settings_choose_the_store(server, tmp_path, monkeypatch):
    for name, value in ACCESS.items():
        monkeypatch.setenv(name, value)
    settings = make_settings(tmp_path, blob_url=f"s3://{server.bucket}/x", blob_endpoint_url=server.endpoint_url)
    store = open_blobs(settings)
    assert isinstance(store, S3Blobs) and store.prefix == "x"
    assert not isinstance(open_blobs(make_settings(tmp_path)), S3Blobs)


@pytest.mark.parametrize(
    ("url", "parsed"),
    [("s3://bucket", ("bucket", "")), ("s3://bucket/a/b/", ("bucket", "a/b"))],
)
def test_blob_urls(url, parsed):
    assert parse_blob_url(url) == parsed


@pytest.mark.parametrize("url", ["http://bucket/x", "s3:///x", "/tmp/blobs"])
def test_bad_blob_urls_are_refused(url):
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        parse_blob_url(url)


def test_local_copies_are_pruned_after_a_day(blobs, db):
    relative = blobs.track_relative(5, 1)
    temp = blobs.temp_path(relative)
    temp.write_bytes(b"mp3")
    blobs.commit(temp, relative)
    copy = blobs.local_path(relative)
    now = datetime.now(UTC).replace(tzinfo=None)
    UploadRetention(db, blobs, keep_s=WEEK_S).sweep(now)
    assert copy.exists()
    UploadRetention(db, blobs, keep_s=WEEK_S).sweep(now + timedelta(days=2))
    assert not copy.exists() and blobs.exists(relative)  # the copy goes, the track stays
    assert blobs.local_path(relative).read_bytes() == b"mp3"  # downloaded again when needed
