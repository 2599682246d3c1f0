"""End to end with the real worker: /song through the planner and the DiT, then an exact /reroll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from bot.core import parser
from bot.core.service import SongService
from storage.contract.errors import NotFound
from storage.contract.types import DeliveryTarget, TrackView, UserRef
from tests.helpers import make_settings, start_engine

USER, TARGET = UserRef("console", "tester"), DeliveryTarget("console", "console")


@asynccontextmanager
async def _engine_and_song(tmp_path: Path, model_dir: Path) -> AsyncIterator[tuple[SongService, TrackView]]:
    """The service and a running acestep engine on the tiny set, with one finished song (seed 5)."""
    settings = make_settings(tmp_path, engine_backend="acestep", model_dir=model_dir, engine_device="cpu")
    service = SongService.from_settings(settings)
    stop = start_engine(settings)
    try:
        command = parser.parse_command("/song a sad folk song about trains duration=10 seed=5")
        assert command is not None
        job = await service.submit_song(USER, parser.parse_song(command), TARGET)
        yield service, await _finished(service, job.id)
    finally:
        stop()


async def _finished(service: SongService, job_id: int) -> TrackView:
    for _ in range(1200):
        try:
            return await service.track(job_id)
        except NotFound:
            job = await asyncio.to_thread(service.queue.get, job_id)
            assert job.status != "failed", job.error
            await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def _samples(service: SongService, track: TrackView) -> np.ndarray:
    job = service.queue.get(track.job_id)
    result = service.result(job)
    assert result is not None
    data, rate = sf.read(str(result.mp3_path), dtype="float32", always_2d=True)
    assert rate == 48_000
    return data


async def test_song_is_planned_stored_and_rerolled_exactly(tmp_path: Path, tiny_full_set: Path) -> None:
    assert (tiny_full_set / "acestep-5Hz-lm-0.6B" / "model.safetensors").is_file()
    async with _engine_and_song(tmp_path, tiny_full_set) as (service, song):
        reroll_job = await service.reroll(USER, song.job_id, 5, TARGET)
        reroll = await _finished(service, reroll_job.id)
    plan = song.plan
    assert plan is not None and plan.duration_s == 10 and len(plan.audio_codes) == 50
    assert song.caption == plan.caption and reroll.plan == plan and reroll.seed == 5
    first, again = _samples(service, song), _samples(service, reroll)
    assert abs(first.shape[0] / 48_000 - 10.0) < 0.1
    assert np.array_equal(first, again)  # the same decoded samples


async def test_reroll_without_a_seed_is_a_new_take_with_new_codes(tmp_path: Path, tiny_full_set: Path) -> None:
    async with _engine_and_song(tmp_path, tiny_full_set) as (service, song):
        take_job = await service.reroll(USER, song.job_id, None, TARGET)
        take = await _finished(service, take_job.id)
        again = await _finished(service, (await service.reroll(USER, take_job.id, take.seed, TARGET)).id)
    assert song.plan is not None and take.plan is not None
    blueprint = ("caption", "lyrics", "bpm", "key", "time_signature", "duration_s", "language")
    assert all(getattr(take.plan, name) == getattr(song.plan, name) for name in blueprint)
    assert len(take.plan.audio_codes) == 50 and take.plan.audio_codes != song.plan.audio_codes
    assert again.plan == take.plan and np.array_equal(_samples(service, again), _samples(service, take))
