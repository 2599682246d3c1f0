"""When each lyric line is sung: the official DiT cross-attention aligner, as our own code.

Upstream (``acestep/dit_alignment_score.py`` ``MusicStampsAligner``, called by
``handler.get_lyric_timestamp``) takes the cross-attention probabilities of a few chosen
(layer, head)s from the lyric tokens to the DiT's patches (one patch = two latent frames) and:

1. keeps the chosen heads, [heads, tokens, patches];
2. denoises them by "bidirectional consensus": softmax over patches times softmax over tokens,
   minus ``violence`` times the row medians, then the column medians (each clipped at zero),
   squared, z-scored over the whole stack, median-filtered along time, averaged over the heads;
3. aligns tokens to patches by dynamic time warping on the negated matrix;
4. gives each token the first and last patch of its path, in seconds, and groups tokens into
   sentences at every token whose text holds a newline.

This module is pure maths on tensors (where the attention is) and arrays (DTW, on the CPU): no
model, no tokenizer object (a ``decode`` function stands for the tokenizer). The DiT pass that
records the attention is ``alignment_pass.py``; the official lyric score is ``alignment_score.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Upstream's ``handler.custom_layers_config`` for the 2B DiT (24 layers, 16 heads): layer -> heads.
OFFICIAL_HEADS: dict[int, list[int]] = {2: [6], 3: [10, 11], 4: [3], 5: [8, 9], 6: [8]}
# The tiny checkpoints (4 layers, 4 heads) have none of those heads; the golden case uses these.
TINY_HEADS: dict[int, list[int]] = {1: [0, 3], 2: [1], 3: [2]}
VIOLENCE = 2.0  # upstream's ``violence_level`` in ``get_lyric_timestamp``
MEDIAN_WIDTH = 1  # upstream's ``medfilt_width`` there (1: the filter keeps the matrix as it is)
# torch.quantile refuses inputs over 2**24 elements; medians are taken one head at a time below it.
_QUANTILE_LIMIT = 1 << 24
_TAG = re.compile(r"\[[^\]]*\]")

Decode = Callable[[list[int]], str]


@dataclass(frozen=True)
class TokenTime:
    """One lyric token's place in the song (upstream's ``TokenTimestamp`` without its unused score)."""

    token_id: int
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Sentence:
    """Tokens up to and including a newline token (upstream's ``SentenceTimestamp``)."""

    text: str
    start_s: float
    end_s: float


def heads_for(layers: int, heads: int) -> dict[int, list[int]]:
    """The (layer → heads) to read: upstream's for a DiT that has them all, else the tiny set's."""
    if all(layer < layers and max(chosen) < heads for layer, chosen in OFFICIAL_HEADS.items()):
        return OFFICIAL_HEADS
    return {layer: [h for h in chosen if h < heads] for layer, chosen in TINY_HEADS.items() if layer < layers}


def select_heads(attention: Mapping[int, torch.Tensor], heads: Mapping[int, Sequence[int]]) -> torch.Tensor | None:
    """Stack the chosen heads, in the config's order: [chosen, tokens, patches] float32 where they are, or None.

    Args:
        attention: Per layer index, [heads, tokens, patches] (``dict(enumerate(full))`` for a
            [layers, heads, tokens, patches] tensor). Absent layers or heads are skipped, as upstream skips them.
        heads: Layer index → head indices.
    """
    chosen: list[torch.Tensor] = []
    for layer, head_list in heads.items():
        if layer not in attention:
            continue
        maps = attention[layer]
        chosen.extend(maps[h] for h in head_list if h < maps.shape[0])
    if not chosen:
        return None
    return torch.stack(chosen).detach().float()


def median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Upstream's ``median_filter`` along the last axis (reflect padding); width 1 keeps ``x``."""
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    squeezed = x.ndim == 2
    if squeezed:
        x = x[None]
    x = F.pad(x, (pad, pad, 0, 0), mode="reflect")
    result = x.unfold(-1, width, 1).sort()[0][..., pad]
    return result.squeeze(0) if result.ndim > 2 else result


def _median(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``torch.quantile(x, 0.5, dim, keepdim=True)``, a head at a time when the stack is too large."""
    if x.numel() <= _QUANTILE_LIMIT:
        return torch.quantile(x, 0.5, dim=dim, keepdim=True)
    return torch.cat([torch.quantile(head, 0.5, dim=dim, keepdim=True) for head in x.split(1)])


def consensus(stack: torch.Tensor, violence: float = VIOLENCE, width: int = MEDIAN_WIDTH) -> np.ndarray:
    """The denoised token × patch matrix that DTW walks (upstream's ``_apply_bidirectional_consensus``).

    Upstream computes it on the CPU; on a GPU it runs there (float32 as well), where it costs
    little next to the DiT, and equals the CPU's up to rounding.

    Args:
        stack: Chosen heads' attention probabilities [heads, tokens, patches], float32.
        violence: How many medians to subtract from each row and each column.
        width: Median filter width along time.

    Returns:
        float32 [tokens, patches].
    """
    processed = F.softmax(stack, dim=-1) * F.softmax(stack, dim=-2)
    processed = torch.relu(processed - violence * _median(processed, -1))
    processed = torch.relu(processed - violence * _median(processed, -2))
    processed = processed**2
    std, mean = torch.std_mean(processed, unbiased=False)
    normalised = median_filter((processed - mean) / (std + 1e-9), width)
    return normalised.mean(dim=0).cpu().numpy()


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upstream's ``dtw_cpu``: the cheapest monotone path through ``cost`` [N, M].

    Accumulated costs are float32, as upstream's; a step adds ``cost`` in its own dtype. Ties go
    to the left move, then the up move, as upstream's comparisons do. The cells of one
    anti-diagonal depend only on the two before it, so each anti-diagonal is one vector step;
    the tables are stored skewed (row k holds anti-diagonal i + j = k, by i) so that every step
    reads contiguous slices.

    Returns:
        (row indices, column indices) of the path from (0, 0) to (N-1, M-1).
    """
    n, m = cost.shape
    diagonals = n + m + 1
    acc = np.full((diagonals, n + 1), np.inf, dtype=np.float32)  # acc[k, i]: cell (i, k - i), 1-based
    acc[0, 0] = 0
    moves = np.full((diagonals, n + 1), -1, dtype=np.int8)
    skewed = np.zeros((diagonals, n + 1), dtype=cost.dtype)
    for i in range(1, n + 1):
        skewed[i + 1 : i + m + 1, i] = cost[i - 1]
    for k in range(2, diagonals):
        lo, hi = max(1, k - m), min(n, k - 1)
        c0, c1, c2 = acc[k - 2, lo - 1 : hi], acc[k - 1, lo - 1 : hi], acc[k - 1, lo : hi + 1]
        diagonal = (c0 < c1) & (c0 < c2)
        up = ~diagonal & (c1 < c0) & (c1 < c2)
        best = np.where(diagonal, c0, np.where(up, c1, c2))
        acc[k, lo : hi + 1] = skewed[k, lo : hi + 1] + best.astype(cost.dtype)  # rounded to float32
        moves[k, lo : hi + 1] = np.where(diagonal, 0, np.where(up, 1, 2))
    return _backtrace(moves, n, m)


def _backtrace(moves: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Walk back from (n, m); the first row moves left, the first column up (upstream's boundary)."""
    rows, cols = [], []
    i, j = n, m
    while i > 0 or j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        move = 1 if j == 0 else 2 if i == 0 else moves.item(i + j, i)
        if move == 0:
            i, j = i - 1, j - 1
        elif move == 1:
            i -= 1
        elif move == 2:
            j -= 1
        else:
            break
    return np.array(rows[::-1], dtype=np.int32), np.array(cols[::-1], dtype=np.int32)


def token_texts(ids: Sequence[int], decode: Decode) -> list[str]:
    """What each token adds to the decoded text (upstream's ``_decode_tokens_incrementally``).

    A token that ends inside a multi-byte character adds "" (its bytes come with a later token).
    """
    texts, before = [], b""
    for i in range(len(ids)):
        now = decode(list(ids[: i + 1])).encode("utf-8", errors="surrogatepass")
        added = now[len(before) :] if len(now) >= len(before) else b""
        try:
            texts.append(added.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append("")
        before = now
    return texts


def token_times(calc: np.ndarray, ids: Sequence[int], duration_s: float, decode: Decode) -> list[TokenTime]:
    """Each token's first and last patch on the DTW path, in seconds (upstream's ``token_timestamps``).

    A token the path skips starts and ends where the previous token ended.
    """
    rows, cols = dtw(-calc.astype(np.float64))
    seconds_per_patch = duration_s / calc.shape[-1]
    first = np.searchsorted(rows, np.arange(len(ids)), side="left")
    last = np.searchsorted(rows, np.arange(len(ids)), side="right") - 1
    texts = token_texts(ids, decode)
    times: list[TokenTime] = []
    for i, token in enumerate(ids):
        if first[i] > last[i]:
            start = end = times[-1].end_s if times else 0.0
        else:
            start = float(cols[first[i]] * seconds_per_patch)
            end = max(start, float(cols[last[i]] * seconds_per_patch))
        times.append(TokenTime(int(token), texts[i], start, end))
    return times


def sentences(tokens: Sequence[TokenTime], decode: Decode) -> list[Sentence]:
    """Tokens grouped up to each token holding a newline; blank groups dropped (upstream's grouping)."""
    groups: list[list[TokenTime]] = [[]]
    for token in tokens:
        groups[-1].append(token)
        if "\n" in token.text:
            groups.append([])
    result = []
    for group in groups:
        text = decode([t.token_id for t in group]).strip() if group else ""
        if text:
            result.append(Sentence(text, round(group[0].start_s, 3), round(group[-1].end_s, 3)))
    return result


def sung_text(line: str) -> str:
    """A line without its section tags ("[Verse]", "[Chorus - loud]"); "" for a tag-only line."""
    return " ".join(_TAG.sub(" ", line).split())


def sung_lines(lyrics: str) -> list[str]:
    """The lines of ``lyrics`` that are sung: neither blank nor section tags alone."""
    return [text for text in (sung_text(line) for line in lyrics.splitlines()) if text]


def align(
    stack: torch.Tensor, ids: Sequence[int], duration_s: float, decode: Decode
) -> tuple[list[TokenTime], list[Sentence]]:
    """The chosen heads' attention → token times and sentences (upstream's ``get_timestamps_and_lrc``)."""
    tokens = token_times(consensus(stack), ids, duration_s, decode)
    return tokens, sentences(tokens, decode)
