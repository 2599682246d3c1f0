"""Windowed attention block by block equals the dense call with the window bias."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.acestep.layers import Band, attention_bias, banded_attention
from engine.acestep.pipeline import AceStepPipeline, Track
from engine.acestep.text import Metas


def test_banded_attention_equals_the_dense_window() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 101, 16, generator=gen) for _ in range(3))
    mask = torch.ones(2, 101, dtype=torch.bool)
    mask[1, 77:] = False  # the second item is padded
    for key_mask in (None, mask):
        bias = attention_bias(101, key_mask, 8, q.dtype, q.device)
        dense = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2)
        banded = banded_attention(q, k, v, Band(8, key_mask), 16**-0.5).transpose(1, 2)
        valid = mask if key_mask is not None else torch.ones_like(mask)  # padded rows are discarded
        torch.testing.assert_close(banded[valid], dense[valid], atol=1e-6, rtol=1e-5)


def test_the_decoder_gives_the_same_song_either_way(tiny_set: Path) -> None:
    pipeline = AceStepPipeline.from_dir(tiny_set, torch.device("cpu"), torch.float32)
    tracks = [Track("upbeat pop", "", "en", Metas(duration_s=d), s) for d, s in ((6, 1), (5, 2))]
    assert not pipeline.dit.decoder._banded(75)  # automatic: only on CUDA
    pipeline.dit.decoder.banded = False
    dense = pipeline(tracks)
    pipeline.dit.decoder.banded = True
    banded = pipeline(tracks)
    for a, b in zip(dense, banded, strict=True):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5
