"""Sampling pieces shared by the reference loop and the fast path: counter noise and top-p.

Counter-based noise
    Each request's Gumbel noise is a pure function of ``(seed, phase, step, token id)``: a
    32-bit integer hash (Wellons' ``lowbias32``, done in int64 tensor ops with the products
    split so that nothing overflows) turned into a uniform strictly inside (0, 1) with 23 bits
    (exact in float32, so never 0 or 1), then into a Gumbel value. No generator state exists,
    so a request's draw is the same whatever its batch neighbours, its row, the width of the
    computed vocabulary (the code phase computes only the code rows) or the device. ``step``
    is the request's own token index.

Top-p by threshold
    The nucleus keeps token ``t`` when the probability mass of the tokens strictly more likely
    than ``t`` is at most ``top_p`` (so the most likely token is always kept). For distinct
    probabilities this is exactly the sort-and-cumsum rule. The smallest kept probability is
    read from one descending sort and its cumulative sum (fixed shapes, a handful of kernels;
    an earlier bisection over float32 bit patterns took 31 masked sums for the same nucleus).
    Ties: tokens of equal probability are kept or dropped together, whereas a sort-and-scatter
    keeps an arbitrary part of a tie that straddles the boundary.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
PHASE_SALT = (0x68E31DA4, 0xB5297A4D)  # phase 0 (metadata) and phase 1 (codes)
NEG_INF = float("-inf")


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2**32`` for int64 ``x`` in [0, 2**32) (two kernels).

    The int64 product may pass 2**63; torch's integer kernels (CPU and CUDA) wrap modulo 2**64,
    and the low 32 bits of a product modulo 2**64 are those of the exact product.
    """
    return (x * c) & MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (lowbias32) of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def row_keys(seed: torch.Tensor, phase: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """One int64 key per row from its seed (uint32), phase (0 or 1) and token index."""
    salt = torch.where(phase > 0, PHASE_SALT[1], PHASE_SALT[0])
    key = hash32((seed & MASK32) ^ salt)
    return hash32(key ^ (step & MASK32))


def token_salts(token_ids: torch.Tensor) -> torch.Tensor:
    """Each token id's own hash; a decoder computes it once for its columns."""
    return hash32(token_ids & MASK32)


def gumbel_salted(keys: torch.Tensor, salts: torch.Tensor) -> torch.Tensor:
    """Gumbel noise ``[rows, len(salts)]`` (float32) from row keys and :func:`token_salts`."""
    h = hash32(keys[:, None] ^ salts[None, :])
    u = ((h >> 9).float() + 0.5) * (1.0 / (1 << 23))  # 23 bits: exact in float32, strictly inside (0, 1)
    return -torch.log(-torch.log(u))


def gumbel(keys: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """Gumbel noise ``[rows, len(token_ids)]`` (float32) for the given row keys and token ids."""
    return gumbel_salted(keys, token_salts(token_ids))


def top_p_keep(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """The nucleus of each row by threshold (see the module docstring), as a bool mask.

    Args:
        probs: ``[rows, n]`` float32 probabilities (masked tokens exactly 0).
        top_p: ``[rows]`` nucleus mass; ``>= 1`` keeps everything.
    """
    return ~top_p_drop(probs, top_p)


def top_p_drop(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """The complement of :func:`top_p_keep` (what the sampler masks), in about ten kernels."""
    top = torch.sort(probs, dim=-1, descending=True).values
    above = top.cumsum(-1) - top  # the mass before each sorted token, as the reference loop sums it
    kept = (above <= top_p[:, None]).sum(-1, keepdim=True)  # >= 1: nothing is above the first
    threshold = top.gather(-1, kept - 1)  # the smallest kept probability
    return (probs < threshold) & (top_p < 1.0)[:, None]


def top_p_keep_sorted(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """The same rule with a full sort (the reference; ties broken by the sort's order)."""
    top, order = torch.sort(probs, descending=True, dim=-1)
    keep_sorted = (top.cumsum(-1) - top) <= top_p[:, None]
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
    return keep | (top_p >= 1.0)[:, None]


def pick(
    logits: torch.Tensor, keys: torch.Tensor, salts: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor
) -> torch.Tensor:
    """Index of the sampled column per row: top-p on ``softmax(logits)``, then temperature, Gumbel-max.

    Args:
        logits: ``[rows, n]`` float32, disallowed tokens at -inf.
        keys: ``[rows]`` noise keys (:func:`row_keys`).
        salts: ``[n]`` :func:`token_salts` of each column's token id (the noise is keyed by token id).
        temperature: ``[rows]``; ``<= 0`` is greedy.
        top_p: ``[rows]``; ``>= 1`` disables the cut.
    """
    filtered = logits.masked_fill(top_p_drop(torch.softmax(logits, dim=-1), top_p), NEG_INF)
    hot = (temperature > 0)[:, None]
    scores = torch.where(hot, filtered / temperature.clamp(min=1e-6)[:, None] + gumbel_salted(keys, salts), filtered)
    return scores.argmax(-1)
