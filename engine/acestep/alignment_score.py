"""How well a take's lyrics line up with its audio: the official lyric score, as our own code.

Upstream (``acestep/dit_alignment_score.py`` ``MusicLyricScorer``, called by
``handler.get_lyric_score``) averages the chosen heads' cross-attention, min-max normalises it
("energy"), walks DTW over the squared energy, and multiplies three measures:

- coverage: the share of sung tokens (outside ``[...]`` tags) whose strongest patch has energy > 0.1;
- monotonicity: the share of consecutive sung tokens whose energy centroid (over patches with
  energy > 0.01) does not move back by more than 9 patches;
- confidence: the mean energy along the DTW path.

score = coverage² · monotonicity² · confidence, clipped to [0, 1] and rounded to 4 places.
Upstream computes it twice per take: on pure noise at t = 1 ("lm_score") and on the re-noised
final latent at t = 1/steps ("dit_score"); both are this function on a different attention.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from engine.acestep.alignment import dtw, median_filter, select_heads

COVERAGE_ENERGY = 0.1
CENTROID_ENERGY = 0.01  # upstream's ``time_weight``
OVERLAP_PATCHES = 9.0  # upstream's ``overlap_frames``: how far a centroid may move back


def tag_mask(pieces: Sequence[str]) -> np.ndarray:
    """1 for a sung token, 0 inside and at the brackets of a ``[...]`` tag (upstream's type mask).

    Args:
        pieces: Each token decoded alone (``decode([id])``).
    """
    mask = np.ones(len(pieces), dtype=np.int32)
    inside = False
    for i, piece in enumerate(pieces):
        if "[" in piece:
            inside = True
        if inside:
            mask[i] = 0
        if "]" in piece:
            inside = False
            mask[i] = 0
    return mask


def energy(stack: torch.Tensor, width: int = 1) -> np.ndarray:
    """The chosen heads' mean attention, median-filtered, min-max normalised: float32 [tokens, patches]."""
    matrix = median_filter(stack.mean(dim=0), width).numpy()
    low, high = matrix.min(), matrix.max()
    if high - low > 1e-9:
        return np.asarray((matrix - low) / (high - low))
    return np.zeros_like(matrix)


def lyric_score(
    attention: Mapping[int, torch.Tensor], pieces: Sequence[str], heads: Mapping[int, Sequence[int]]
) -> float:
    """The official lyric alignment score of one take, 0..1 (higher: lyrics follow the audio better).

    Args:
        attention: Per DiT layer, the cross-attention probabilities from the lyric tokens only to
            the patches, [heads, tokens, patches] (``AceStepPipeline.lyric_attention``).
        pieces: Each lyric token decoded alone, in order (``[decode([id]) for id in ids]``).
        heads: Layer → heads to read (``alignment.heads_for``).

    Returns:
        The score, or 0.0 when none of ``heads`` is in ``attention`` (upstream's failure value).
    """
    stack = select_heads(attention, heads)
    if stack is None:
        return 0.0
    matrix = energy(stack.cpu())
    mask = tag_mask(pieces)
    if len(mask) != matrix.shape[0]:
        mask = np.ones(matrix.shape[0], dtype=np.int32)
    rows, cols = dtw(-(matrix**2).astype(np.float32))
    coverage, monotonicity, confidence = _measures(torch.from_numpy(matrix).double(), rows, cols, mask)
    return round(float(np.clip(coverage**2 * monotonicity**2 * confidence, 0.0, 1.0)), 4)


def _measures(matrix: torch.Tensor, rows: np.ndarray, cols: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """Coverage, monotonicity and path confidence in float64 (upstream's ``_compute_alignment_metrics``)."""
    sung = torch.from_numpy(mask).long() == 1
    return _coverage(matrix, sung), _monotonicity(matrix, sung), _confidence(matrix, rows, cols)


def _coverage(matrix: torch.Tensor, sung: torch.Tensor) -> float:
    total = sung.sum().double()
    if total <= 0:
        return 1.0
    return float((sung & (matrix.max(dim=1).values > COVERAGE_ENERGY)).sum().double() / total)


def _monotonicity(matrix: torch.Tensor, sung: torch.Tensor) -> float:
    weights = torch.where(matrix > CENTROID_ENERGY, matrix, torch.zeros_like(matrix))
    columns = torch.arange(matrix.shape[1], dtype=torch.float64)
    total, moment = weights.sum(dim=1), (weights * columns).sum(dim=1)
    centroids = torch.full((matrix.shape[0],), -1.0, dtype=torch.float64)
    valid = total > 1e-9
    centroids[valid] = moment[valid] / total[valid]
    sequence = centroids[sung & (centroids >= 0)]
    if sequence.shape[0] <= 1:
        return 1.0
    forward = (sequence[1:] >= sequence[:-1] - OVERLAP_PATCHES).double().sum()
    return float(forward / torch.tensor(sequence.shape[0] - 1, dtype=torch.float64))


def _confidence(matrix: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> float:
    """Mean energy along the path (upstream weighs tag steps by 1.0, i.e. like the others)."""
    if len(rows) == 0:
        return 0.0
    on_path = matrix[torch.from_numpy(rows).long(), torch.from_numpy(cols).long()]
    weights = torch.ones_like(on_path)
    return float((on_path * weights).sum() / weights.sum())
