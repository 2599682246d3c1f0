"""Pipeline precision: bf16 stays close to our fp32 result; fp16 is never chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.acestep.backend import pick_device
from engine.acestep.pipeline import AceStepPipeline, Track
from engine.acestep.text import Metas


def test_device_choice_is_bf16_on_cuda_and_fp32_on_cpu() -> None:
    assert pick_device("cpu") == (torch.device("cpu"), torch.float32)
    assert pick_device("cuda:0") == (torch.device("cuda:0"), torch.bfloat16)
    assert pick_device("auto")[1] in (torch.float32, torch.bfloat16)


def test_bf16_matches_fp32_within_bf16_precision(tiny_set: Path) -> None:
    track = Track("upbeat pop", "[Verse]\nla la", "en", Metas(bpm=100, duration_s=6), 5)
    songs = {
        dtype: AceStepPipeline.from_dir(tiny_set, torch.device("cpu"), dtype)([track])[0]
        for dtype in (torch.float32, torch.bfloat16)
    }
    full, half = songs[torch.float32], songs[torch.bfloat16]
    assert half.dtype == np.float32 and np.isfinite(half).all()
    # bf16 keeps 8 bits of mantissa: a few 1e-3 of the signal's scale, far from a different song.
    assert np.abs(full - half).max() < 0.05 * np.abs(full).max()


def test_compiling_is_cuda_only_and_a_failed_compile_falls_back_to_eager(tiny_set: Path) -> None:
    from engine.acestep.pipeline import _CompiledOrEager

    pipeline = AceStepPipeline.from_dir(tiny_set, torch.device("cpu"), torch.float32)
    assert pipeline.compile_decoder() is False and pipeline.decoder is pipeline.dit.decoder
    track = Track("upbeat pop", "", "en", Metas(duration_s=6), 3)
    eager = pipeline([track])[0]

    def broken(*_args: object) -> torch.Tensor:
        raise RuntimeError("no compiler here")

    pipeline.dit.decoder.layer_calls = [broken] * len(pipeline.dit.decoder.layers)
    pipeline.decoder = _CompiledOrEager(pipeline.dit.decoder)
    assert np.array_equal(pipeline([track])[0], eager)
    assert pipeline.dit.decoder.layer_calls is None  # it stays eager afterwards
