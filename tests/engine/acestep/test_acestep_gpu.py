"""DEVICE-ONLY (CUDA): exact batches are bit-identical on a GPU too. Skipped on machines without one.

Runs on a lent GPU machine with the rest of the suite (``pytest -m gpu`` alone): the tiny set in bf16,
a song alone and inside a batch of three of other lengths, captions and lyrics, and the same song
from a second pipeline (another engine process's models, its own kernel choices).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.acestep.pipeline import AceStepPipeline, Track
from engine.acestep.text import Metas

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="device-only: needs a CUDA GPU"),
]

SONG = Track("lo-fi rain at night", "[Verse]\nla la", "en", Metas(bpm=90, duration_s=12), 5)
OTHERS = [
    Track("a long ballad with strings and a choir", "[Chorus]\n" + "oh " * 60, "en", Metas(duration_s=20), 6),
    Track("dub techno", "", "en", Metas(duration_s=10), 7),
]


def _pipeline(tiny_set: Path, exact: bool) -> AceStepPipeline:
    return AceStepPipeline.from_dir(tiny_set, torch.device("cuda"), torch.bfloat16, exact=exact)


def test_a_song_is_bit_identical_alone_and_in_a_batch_on_cuda(tiny_set: Path) -> None:
    pipeline = _pipeline(tiny_set, exact=True)
    alone = pipeline([SONG])[0]
    for batch in ([SONG, *OTHERS], [OTHERS[0], SONG, OTHERS[1]]):
        assert np.array_equal(pipeline(batch)[batch.index(SONG)], alone)
    assert np.array_equal(_pipeline(tiny_set, exact=True)([OTHERS[1], SONG])[1], alone)


def test_the_batched_path_stays_close_on_cuda(tiny_set: Path) -> None:
    """One call per batch is equal only up to bf16 rounding (the issue measured 49 dB on an H200)."""
    pipeline = _pipeline(tiny_set, exact=False)
    alone = pipeline([SONG])[0]
    inside = pipeline([SONG, *OTHERS])[0].astype(np.float64)
    snr = 10 * np.log10(np.sum(alone.astype(np.float64) ** 2) / max(np.sum((alone - inside) ** 2), 1e-30))
    assert snr > 20.0  # far from another song (about 0 dB), whatever the random tiny weights do in bf16
