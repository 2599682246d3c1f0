"""The timing pass: one DiT forward on the re-noised final latent that records lyric attention.

Upstream's ``handler.get_lyric_timestamp`` (called by its UI with ``seed=42`` for every take):

1. re-noise the final latent to t = 1/steps: x_t = t · noise + (1 − t) · x_0, the noise from a
   generator seeded with 42 (ours: a CPU generator, float32, then cast, like our sampling noise;
   upstream draws on the device in the model dtype, which is the same on a CPU in float32);
2. one decoder pass with the condition the take was made with, recording the cross-attention of
   the chosen (layer, head)s;
3. keep the lyric tokens: after the tokens of the prompt's header (its "# Languages", language
   and "# Lyric" lines, tokenized alone, as upstream does) and before ``<|endoftext|>``; the lyric tokens come first in
   the packed encoder sequence, so token k of the lyric prompt is encoder position k;
4. align (``alignment.py``) over the song's DiT length in seconds.

The seed is upstream's constant, not the song's: the timing of a take depends only on its latents
and its condition, so a re-roll with the same seed, or timing a stored song later, gives the same lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer

from engine.acestep.alignment import Decode, align, heads_for, select_heads, sung_text
from engine.acestep.decoder import CrossKV, DiTDecoder
from engine.acestep.text import LYRICS_MAX_TOKENS, encode_ids, lyrics_prompt
from storage.contract.results import LyricTiming, TimedLine

NOISE_SEED = 42  # upstream's UI passes seed=42 to get_lyric_timestamp and get_lyric_score


@dataclass(frozen=True)
class LyricTokens:
    """The lyric tokens of a lyric prompt and where they sit in it (= in the encoder sequence)."""

    ids: list[int]
    start: int

    @property
    def end(self) -> int:
        """One past the last lyric token."""
        return self.start + len(self.ids)


def lyric_tokens(tokenizer: Tokenizer, lyrics: str, language: str) -> LyricTokens:
    """The prompt's tokens between its header and ``<|endoftext|>``, as upstream cuts them."""
    ids = encode_ids(tokenizer, lyrics_prompt(lyrics, language), LYRICS_MAX_TOKENS)
    header = f"# Languages\n{language}\n\n# Lyric\n"
    start = len(tokenizer.encode(header, add_special_tokens=False).ids)
    eos = tokenizer.token_to_id("<|endoftext|>")
    end = ids.index(eos) if eos in ids else len(ids)
    return LyricTokens(ids[start:end], start)


def decoder_of(tokenizer: Tokenizer) -> Decode:
    """Token ids → text with special tokens kept (upstream's ``decode(..., skip_special_tokens=False)``)."""
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=False)


def renoise(latents: torch.Tensor, t: float, seed: int = NOISE_SEED) -> torch.Tensor:
    """x_t = t · noise + (1 − t) · latents for latents [1, T, C]; the noise is seeded on the CPU."""
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(seed))
    return t * noise.to(latents.device, latents.dtype) + (1.0 - t) * latents


@torch.no_grad()
def lyric_attention(
    decoder: DiTDecoder,
    x_t: torch.Tensor,
    t: float,
    context: torch.Tensor,
    cross: CrossKV,
    tokens: LyricTokens,
    layers: Sequence[int],
) -> dict[int, torch.Tensor]:
    """{layer: [heads, lyric tokens, patches]} in the DiT's dtype and device, for one track (batch of 1).

    All heads of a layer stay in the DiT's dtype (bf16 on a GPU); ``select_heads`` takes the chosen
    ones to float32.

    Args:
        decoder: The DiT decoder.
        x_t: The re-noised latents [1, T, C].
        t: Their flow time.
        context: [1, T, 2C] as sampled.
        cross: The track's own cross K/V (its valid encoder positions only).
        tokens: The lyric tokens and their place.
        layers: The layers to record.
    """
    timestep = torch.full((1,), t, device=x_t.device, dtype=x_t.dtype)
    maps = decoder.cross_attention(x_t, timestep, context, cross, layers)
    return {i: p[0, :, :, tokens.start : tokens.end].transpose(-1, -2) for i, p in maps.items()}


def timing(
    attention: Mapping[int, torch.Tensor],
    tokens: LyricTokens,
    heads: Mapping[int, Sequence[int]],
    dit_s: float,
    song_s: float,
    decode: Decode,
) -> LyricTiming | None:
    """One ``TimedLine`` per sung sentence (section tags dropped); None when nothing is sung.

    Args:
        attention: ``lyric_attention``'s maps.
        tokens: The lyric tokens.
        heads: Layer → heads to read.
        dit_s: The seconds the DiT's latents span (what the patches divide).
        song_s: The delivered song's length: no line starts or ends after it.
        decode: The text tokenizer's decode.
    """
    stack = select_heads(attention, heads)
    if stack is None or not tokens.ids:
        return None
    _, found = align(stack, tokens.ids, dit_s, decode)
    lines = tuple(
        TimedLine(start_s=min(s.start_s, song_s), end_s=min(s.end_s, song_s), text=sung_text(s.text))
        for s in found
        if sung_text(s.text)
    )
    return LyricTiming(lines=lines) if lines else None


def own_cross(cross: CrossKV, row: int, encoder_mask: torch.Tensor | None) -> CrossKV:
    """Row ``row``'s cross K/V cut to its valid encoder positions (they come first when packed)."""
    width = cross[0][0].shape[2] if encoder_mask is None else int(encoder_mask[row].sum())
    return [(k[row : row + 1, :, :width], v[row : row + 1, :, :width]) for k, v in cross]


def heads_of(decoder: DiTDecoder) -> dict[int, list[int]]:
    """The (layer → heads) this DiT's timing pass reads (``alignment.heads_for``)."""
    return heads_for(decoder.config.num_hidden_layers, decoder.config.num_attention_heads)
