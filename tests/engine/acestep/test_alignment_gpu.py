"""DEVICE-ONLY (CUDA): the timing pass on a GPU. Skipped on machines without one.

On a GPU the consensus maths run where the attention is (float32); they must give the CPU's
matrix up to rounding and the same path on the golden synthetic case. The tiny set in bf16 must
time a song, line by line within it, the same way twice and when timed again from its latents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.acestep.alignment import consensus, dtw, select_heads, sung_lines
from engine.acestep.pipeline import AceStepPipeline, Track
from engine.acestep.text import Metas
from storage.contract.results import LyricTiming
from tests.engine.acestep.test_alignment import attention, heads

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="device-only: needs a CUDA GPU"),
]

LYRICS = "[Verse]\nneon lights over the bay\nwe sing until the day\n[Chorus]\nhold on"


def test_consensus_on_the_gpu_equals_the_cpu_s() -> None:
    maps = attention("out.maths")
    on_cpu = select_heads(maps, heads())
    on_gpu = select_heads({layer: m.cuda() for layer, m in maps.items()}, heads())
    assert on_cpu is not None and on_gpu is not None
    cpu, gpu = consensus(on_cpu), consensus(on_gpu)
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-5)
    cpu_rows, cpu_cols = dtw(-cpu.astype(np.float64))
    gpu_rows, gpu_cols = dtw(-gpu.astype(np.float64))
    assert np.array_equal(cpu_rows, gpu_rows) and np.array_equal(cpu_cols, gpu_cols)


def test_a_song_is_timed_on_cuda_the_same_way_twice_and_from_its_latents(tiny_set: Path) -> None:
    pipeline = AceStepPipeline.from_dir(tiny_set, torch.device("cuda"), torch.bfloat16)
    track = Track("lo-fi rain at night", LYRICS, "en", Metas(duration_s=9), 5)
    latents: list[np.ndarray] = []
    first: list[LyricTiming | None] = []
    again: list[LyricTiming | None] = []
    pipeline.generate([track], keep=latents, timings=first)
    pipeline.generate([track], timings=again)
    [timing] = first
    assert timing is not None and [line.text for line in timing.lines] == sung_lines(LYRICS)
    assert all(0 <= line.start_s <= line.end_s <= 9.0 for line in timing.lines)
    assert again == first and pipeline.time_lyrics(track, latents[0]) == timing
