"""A track's samples are bit-identical alone and in any batch (exact mode, the default), on the CPU.

Each neighbour below provokes one batch dependence of the batched path (padding to the longest
caption, to the longest lyrics or to the longest song, the shapes of a batch, a cover's second
condition); each test also checks that the batched path does show it, so the neighbour really
provokes it. The exact path runs every track in calls of its own and gives the samples of the
track alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.acestep.pipeline import AceStepPipeline, Track
from engine.acestep.text import Metas

TRACK = Track("lo-fi rain at night", "[Verse]\nla la", "en", Metas(bpm=90, duration_s=6), 5)
_T = np.arange(8 * 48_000) / 48_000
SOURCE = (0.3 * np.sin(2 * np.pi * 220 * _T)[:, None] * np.ones((1, 2))).astype(np.float32)
NEIGHBOURS = {
    "the same shapes": Track("lo-fi rain at dawn", "[Verse]\nla lo", "en", Metas(bpm=90, duration_s=6), 9),
    "a longer caption": Track(
        "lo-fi rain at night, with a long caption that pads every other caption of its batch",
        "[Verse]\nla la",
        "en",
        Metas(bpm=90, duration_s=6),
        9,
    ),
    "longer lyrics": Track("lo-fi rain at night", "[Verse]\n" + "la " * 40, "en", Metas(bpm=90, duration_s=6), 9),
    "a longer song": Track("lo-fi rain at night", "[Verse]\nla la", "en", Metas(bpm=90, duration_s=9), 9),
    "a cover at half strength": Track("jazz", "", "en", Metas(duration_s=8), 9, source_audio=SOURCE, strength=0.5),
}


@pytest.fixture(scope="module")
def exact(tiny_set: Path) -> AceStepPipeline:
    return AceStepPipeline.from_dir(tiny_set, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def batched(exact: AceStepPipeline) -> AceStepPipeline:
    """The same models, one call per stage for the whole batch (ENGINE_EXACT_BATCHES=false)."""
    return AceStepPipeline(exact.dit, exact.vae, exact.text, exact.silence, exact=False)


@pytest.fixture(scope="module")
def alone(exact: AceStepPipeline) -> np.ndarray:
    """The track alone, on one thread like the tests (another thread count is another reduction order)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return exact([TRACK])[0]
    finally:
        torch.set_num_threads(before)


def test_exact_batches_are_the_default(exact: AceStepPipeline) -> None:
    assert exact.exact is True


@pytest.mark.parametrize("name", list(NEIGHBOURS))
def test_a_track_is_bit_identical_alone_and_beside(
    name: str, exact: AceStepPipeline, batched: AceStepPipeline, alone: np.ndarray
) -> None:
    neighbour = NEIGHBOURS[name]
    assert not np.array_equal(batched([TRACK, neighbour])[0], alone), f"{name} no longer changes a batched track"
    for batch in ([TRACK, neighbour], [neighbour, TRACK, neighbour]):
        songs = exact(batch)
        assert np.array_equal(songs[batch.index(TRACK)], alone)
    assert np.array_equal(exact([neighbour])[0], songs[0])  # the neighbour, too, is itself


def test_the_text_encoder_pads_to_the_longest_caption(exact: AceStepPipeline) -> None:
    """The dependence the exact path avoids: a caption encoded beside a longer one changes."""
    short = "# Caption\nlo-fi rain"
    own, _ = exact.text.captions([short])
    beside, mask = exact.text.captions([short, short + " at night, with strings, a choir and a long fade"])
    assert int(mask[0].sum()) == own.shape[1]
    assert not torch.equal(beside[0, : own.shape[1]], own[0])


class _BatchDependentDecoder:
    """A VAE decoder whose output depends on its batch, as cuDNN's algorithm choice can on a GPU."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def decode(self, windows: torch.Tensor) -> object:
        out = self.model.decode(windows)
        out.sample = out.sample * (1 + 1e-3 * (windows.shape[0] - 1))
        return out


def test_vae_tiles_of_other_tracks_do_not_share_its_calls(
    exact: AceStepPipeline, batched: AceStepPipeline, alone: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exact.vae, "model", _BatchDependentDecoder(exact.vae.model))
    monkeypatch.setattr(exact.vae, "tiles_per_call", 8)  # the GPU's setting: tiles of all songs share calls
    other = NEIGHBOURS["the same shapes"]
    assert not np.array_equal(batched([TRACK, other])[0], alone)
    assert np.array_equal(exact([other, TRACK])[1], alone)


def test_one_invalid_track_fails_alone_in_both_paths(
    exact: AceStepPipeline, batched: AceStepPipeline, alone: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = Track("broken", "", "en", Metas(duration_s=6), 13)
    for pipeline in (exact, batched):
        original = pipeline._noise

        def poisoned(tracks: list[Track], lengths: list[int], original=original) -> torch.Tensor:
            noise = original(tracks, lengths)
            for i, track in enumerate(tracks):
                if track is bad:
                    noise[i] = float("nan")
            return noise

        monkeypatch.setattr(pipeline, "_noise", poisoned)
        first, failed, last = pipeline.generate([TRACK, bad, NEIGHBOURS["the same shapes"]])
        assert isinstance(failed, Exception) and "invalid numbers" in str(failed)
        assert isinstance(first, np.ndarray) and np.isfinite(first).all()
        assert isinstance(last, np.ndarray) and np.isfinite(last).all()
        if pipeline is exact:
            assert np.array_equal(first, alone)
