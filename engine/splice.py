"""Splicing a regenerated part into a song: what repaint and extend keep, with short crossfades.

Both backends regenerate a whole song and then keep the base song's own samples outside the part
that was asked for, crossfading over CROSSFADE_S just outside each edge of the part, so the base
keeps its samples up to CROSSFADE_S (well under the 0.5 s promised) before and after the part.
"""

from __future__ import annotations

import numpy as np

from storage.contract.values import SAMPLE_RATE

CROSSFADE_S = 0.25


def splice(
    base: np.ndarray, new: np.ndarray, start_s: float, end_s: float, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """`new` from `start_s` to `end_s`, `base` elsewhere, crossfaded just outside the part.

    Args:
        base: The base song, float32 (samples, 2); shorter than `new` for an extend.
        new: The regenerated song, float32 (samples, 2), at its final length.
        start_s: Where the regenerated part starts.
        end_s: Where it ends (the end of `new` for an extend).
        sample_rate: Samples per second of both.

    Returns:
        float32 (samples of `new`, 2).
    """
    length = new.shape[0]
    start = min(round(start_s * sample_rate), length, base.shape[0])
    end = min(round(end_s * sample_rate), length)
    fade = round(CROSSFADE_S * sample_rate)
    out = new.astype(np.float32, copy=True)
    kept = max(0, start - fade)
    out[:kept] = base[:kept]
    out[kept:start] = _mix(base[kept:start], new[kept:start], rising=True)
    base_end = min(length, base.shape[0])
    if end < base_end:
        after = min(base_end, end + fade)
        out[end:after] = _mix(base[end:after], new[end:after], rising=False)
        out[after:base_end] = base[after:base_end]
    return out


def _mix(base: np.ndarray, new: np.ndarray, rising: bool) -> np.ndarray:
    """A linear crossfade: towards `new` when `rising`, back to `base` when not."""
    ramp = (np.arange(base.shape[0], dtype=np.float32) + 0.5) / max(1, base.shape[0])
    weight = (ramp if rising else 1.0 - ramp)[:, None]
    return (base * (1.0 - weight) + new * weight).astype(np.float32)
