"""Uploaded recordings are swept after UPLOAD_RETENTION_DAYS; a re-roll of such a cover gets one sentence."""

import asyncio
from datetime import timedelta

import pytest

from bot.core import render
from bot.core.parser import CoverRequest, SongRequest
from bot.core.service import SongService
from bot.core.uploads import UploadSweeper
from storage.contract.errors import NotFound
from tests.bot.core.test_service import ALICE, TARGET, finish, wav
from tests.helpers import make_settings


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def service(tmp_path):
    service = SongService.from_settings(make_settings(tmp_path, upload_retention_days=7))
    service.clock = Clock(service.clock())
    return service


async def finished_cover(service):
    job = await service.submit_cover(ALICE, CoverRequest("jazz trio", 0.7), wav(12.0), "take.wav", TARGET)
    finish(service, job)
    return job


async def wait_until(condition, timeout_s=5.0):
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_the_sweeper_deletes_an_expired_upload_and_its_reroll_says_so(service):
    job = await finished_cover(service)
    source = service.blobs.path(job.source_blob)
    assert (await service.reroll(ALICE, job.id, None, TARGET)).source_blob == job.source_blob
    finish(service, service.queue.pending_of(service.queue.get(job.id).user_id)[0])
    stop = asyncio.Event()
    sweeper = asyncio.create_task(UploadSweeper.for_service(service, every_s=0.01).run(stop))
    await asyncio.sleep(0.05)
    assert source.exists(), "a fresh upload is kept"
    service.clock.now += timedelta(days=7, minutes=1)
    await wait_until(lambda: not source.exists())
    stop.set()
    await sweeper
    with pytest.raises(NotFound) as refused:
        await service.reroll(ALICE, job.id, None, TARGET)
    assert refused.value.user_message == (
        f"The recording behind song #{job.id} was deleted after 7 days, so it can't be re-rolled; "
        "send the audio again with /cover."
    )


async def test_a_song_without_an_upload_still_rerolls_after_the_sweep(service):
    job = await service.submit_song(ALICE, SongRequest("rain", duration_s=10), TARGET)
    finish(service, job)
    service.clock.now += timedelta(days=30)
    await UploadSweeper.for_service(service).sweep_once()
    assert (await service.reroll(ALICE, job.id, None, TARGET)).parent_id == job.id


async def test_zero_days_never_deletes_an_upload(tmp_path):
    # The sweep still runs (for orphaned track files), but it keeps every upload.
    service = SongService.from_settings(make_settings(tmp_path, upload_retention_days=0))
    job = await finished_cover(service)
    sweeper = UploadSweeper.for_service(service, every_s=0.01)
    sweeper.clock = lambda: service.clock() + timedelta(days=3650)
    assert await sweeper.sweep_once() == []
    assert service.blobs.exists(job.source_blob)


async def test_the_sweeper_deletes_a_track_file_no_song_points_to(service):
    job = await finished_cover(service)
    orphan = service.blobs.path("tracks/0000/99-1.mp3")  # stored by an engine that then could not record it
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"ID3")
    recorded = service.blobs.path(service.library.get(job.id).blob_path)
    recorded.parent.mkdir(parents=True, exist_ok=True)
    recorded.write_bytes(b"ID3")
    sweeper = UploadSweeper.for_service(service)
    assert await sweeper.sweep_once() == []  # within the grace
    service.clock.now += timedelta(days=2)
    assert await sweeper.sweep_once() == ["tracks/0000/99-1.mp3"]
    assert recorded.exists() and not orphan.exists()


def test_help_says_how_long_uploads_are_kept():
    assert "deleted after 7 days" in render.help_text(3, 30, 10, 240, 20, 7)
    assert "deleted after 1 day," in render.help_text(3, 30, 10, 240, 20, 1)
    assert "deleted after 12 hours" in render.privacy_text(0.5)
    assert "deleted" not in render.privacy_text(0) and "kept" in render.privacy_text(0)


def test_help_states_the_shortest_recordings():
    limits = render.limits_text(3, 30, 10, 240, 20)
    assert "a recording to cover from 3 seconds, a clip to sound like from 10" in limits


def test_limits_are_said_in_the_right_number():
    """A bot with one song at a time and one a day says "1 song", not "1 songs"."""
    assert "Limits: 1 song waiting at a time, 1 song a day," in render.limits_text(1, 1, 10, 240, 20)
    assert "Limits: 3 songs waiting at a time, unlimited songs a day," in render.limits_text(3, 0, 10, 240, 20)
