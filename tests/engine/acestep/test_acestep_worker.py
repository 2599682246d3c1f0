"""The real worker over the acestep backend on the tiny set: one track's failure is its job's alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.acestep.pipeline import INVALID_LATENTS, AceStepPipeline, Track
from engine.main import build_worker
from storage.contract.spec import JobSpec
from storage.contract.types import FAILED, SUCCEEDED, UserRef
from storage.db import utcnow
from storage.queue.accounts import Accounts
from storage.queue.library import Library
from tests.helpers import make_settings

BROKEN_SEED = 2


def _poison(pipeline: AceStepPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The track seeded BROKEN_SEED starts from NaN noise, so its latents come out invalid."""
    original = pipeline._noise

    def noise(tracks: list[Track], lengths: list[int]) -> torch.Tensor:
        out = original(tracks, lengths)
        for i, track in enumerate(tracks):
            if track.seed == BROKEN_SEED:
                out[i] = float("nan")
        return out

    monkeypatch.setattr(pipeline, "_noise", noise)


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "batched"])
def test_one_invalid_track_of_three_fails_its_job_and_the_others_are_delivered(
    tmp_path: Path, tiny_set: Path, monkeypatch: pytest.MonkeyPatch, exact: bool
) -> None:
    settings = make_settings(
        tmp_path, engine_backend="acestep", model_dir=tiny_set, engine_device="cpu", engine_exact_batches=exact
    )
    worker = build_worker(settings)
    _poison(worker.generator.pipeline, monkeypatch)  # type: ignore[attr-defined]
    user = Accounts(worker.queue.engine).ensure(UserRef("console", "u"), utcnow()).id
    jobs = [
        worker.queue.submit(user, "song", JobSpec(caption="rain", duration_s=6.0), seed, utcnow())
        for seed in (1, BROKEN_SEED, 3)
    ]
    assert worker.run_once()
    first, broken, last = (worker.queue.get(job.id) for job in jobs)
    assert broken.status == FAILED and broken.error == INVALID_LATENTS
    assert first.status == SUCCEEDED and last.status == SUCCEEDED
    library = Library(worker.queue.engine)
    for job in (first, last):
        track = library.get(job.id)
        assert track is not None and worker.blobs.path(track.blob_path).stat().st_size > 0
