"""Repaint, extend and the timbre reference for the ACE-Step pipeline (upstream's repaint task).

    base latents ─► span replaced by silence ─┐
    chunk mask (1 inside the span, 0 outside) ┴─► context ─► DiT ─► latents outside the span kept
    reference clip ─► VAE encode ─► timbre encoder (instead of the silence reference)

As upstream (`handler.py` `_prepare_batch`): the source latents are the base song's with the part
to regenerate replaced by the silence latent, the chunk mask marks that part, and the caption is
prompted with the repaint instruction. An extend is a repaint past the base's end (upstream pads
the source audio there). After sampling, the base's own latents are put back outside the part, and
after decoding its own audio (decoded from the same latents) outside the part, with short
crossfades (`engine/splice.py`), so the rest of the song keeps its samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import torch

from engine.acestep.config import FRAMES_PER_SECOND
from engine.splice import splice

if TYPE_CHECKING:
    from engine.acestep.vae import Vae


class Track(Protocol):
    """What this module reads of a pipeline track (`engine.acestep.pipeline.Track`)."""

    @property
    def seed(self) -> int: ...  # noqa: D102

    @property
    def span(self) -> tuple[int, int] | None: ...  # noqa: D102

    @property
    def base_latents(self) -> np.ndarray | None: ...  # noqa: D102

    @property
    def base_audio(self) -> np.ndarray | None: ...  # noqa: D102

    @property
    def reference_audio(self) -> np.ndarray | None: ...  # noqa: D102


T = TypeVar("T", bound=Track)

REPAINT_INSTRUCTION = "Repaint the mask area based on the given conditions:"
# Upstream takes three 10 s pieces of a reference clip (front, middle and back) as its 30 s reference.
REFERENCE_PIECE_S = 10


def with_base_latents(vae: Vae, track: T) -> T:
    """An edited track whose base has no kept latents (made before they were kept): its audio, VAE-encoded."""
    if track.span is None or track.base_latents is not None or track.base_audio is None:
        return track
    audio = torch.from_numpy(np.ascontiguousarray(track.base_audio, dtype=np.float32)).T
    latents = vae.encode(audio, torch.Generator().manual_seed(track.seed)).numpy()
    edited: Any = track  # a dataclass (the pipeline's Track)
    return replace(edited, base_latents=latents, base_from_audio=True)  # type: ignore[no-any-return]


def span_frames(start_s: float, end_s: float, length: int) -> tuple[int, int]:
    """Latent frames [start, end) covering `start_s`..`end_s` (at least one frame)."""
    start = max(0, min(int(start_s * FRAMES_PER_SECOND), length - 1))
    end = max(start + 1, min(math.ceil(end_s * FRAMES_PER_SECOND), length))
    return start, end


def base_tensor(track: Track, length: int, silence: torch.Tensor) -> torch.Tensor:
    """The base song's latents [length, 64] on the model's device: silence past its end (an extend)."""
    assert track.base_latents is not None
    base = torch.as_tensor(np.asarray(track.base_latents), dtype=silence.dtype, device=silence.device)[:length]
    return torch.cat([base, silence[0, base.shape[0] : length]])


def edit_context(context: torch.Tensor, tracks: Sequence[Track], lengths: list[int], silence: torch.Tensor) -> None:
    """Edited tracks: source = base latents with the span silenced; chunk mask = 1 in the span only (in place)."""
    channels = silence.shape[-1]
    for i, (track, n) in enumerate(zip(tracks, lengths, strict=True)):
        if track.span is None:
            continue
        start, end = track.span
        source = base_tensor(track, n, silence)
        source[start:end] = silence[0, start:end]
        context[i, :n, :channels] = source
        context[i, :n, channels:] = 0.0
        context[i, start:end, channels:] = 1.0


def keep_outside(latents: torch.Tensor, tracks: Sequence[Track], lengths: list[int], silence: torch.Tensor) -> None:
    """Put each edited track's base latents back outside its span (in place)."""
    for i, (track, n) in enumerate(zip(tracks, lengths, strict=True)):
        if track.span is None:
            continue
        start, end = track.span
        base = base_tensor(track, n, silence).to(latents.dtype)
        latents[i, :start] = base[:start]
        latents[i, end:n] = base[end:n]


def splice_audio(track: Track, new: np.ndarray, base: np.ndarray, sample_rate: int) -> np.ndarray:
    """The regenerated span of `new` in the base song's own audio."""
    assert track.span is not None
    start, end = track.span
    return splice(base, new, start / FRAMES_PER_SECOND, end / FRAMES_PER_SECOND, sample_rate)


def references(vae: Vae, silence: torch.Tensor, tracks: Sequence[Track], frames: int) -> torch.Tensor:
    """[B, frames, 64] timbre references: each track's clip encoded by the VAE, else the silence latent."""
    rows = []
    for track in tracks:
        if track.reference_audio is None:
            rows.append(silence[0, :frames])
            continue
        clip = torch.from_numpy(reference_pieces(track.reference_audio, vae.sample_rate)).T
        latents = vae.encode(clip, torch.Generator().manual_seed(track.seed)).to(silence.device, silence.dtype)
        repeats = -(-frames // latents.shape[0])
        rows.append(latents.repeat(repeats, 1)[:frames])
    return torch.stack(rows)


def reference_pieces(clip: np.ndarray, sample_rate: int) -> np.ndarray:
    """Upstream's 30 s reference: a 10 s piece from the front, middle and back thirds (the start of each, here)."""
    piece = REFERENCE_PIECE_S * sample_rate
    if clip.shape[0] <= 3 * piece:
        return np.ascontiguousarray(clip, dtype=np.float32)
    third = clip.shape[0] // 3
    return np.ascontiguousarray(np.concatenate([clip[k * third : k * third + piece] for k in range(3)]), np.float32)
