"""The condition encoder: caption projection, lyric encoder, timbre encoder and sequence packing.

Its output is the one sequence the DiT cross-attends to. Per item the order is: valid lyric
tokens, valid timbre embeddings, valid caption tokens, then the padded ones, with a mask that is
true for the first ``number_valid`` positions.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.acestep.config import DitConfig
from engine.acestep.layers import RMSNorm, make_layers, run_encoder_layers


def pack_sequences(
    first: torch.Tensor, second: torch.Tensor, first_mask: torch.Tensor, second_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate two padded sequences and move each item's valid positions to the front.

    The sort is stable, so valid positions keep their order, and so do the padded ones.

    Returns:
        (packed [B, L1 + L2, D], mask [B, L1 + L2] bool).
    """
    hidden = torch.cat([first, second], dim=1)
    mask = torch.cat([first_mask, second_mask], dim=1)
    order = mask.argsort(dim=1, descending=True, stable=True)
    packed = torch.gather(hidden, 1, order.unsqueeze(-1).expand_as(hidden))
    positions = torch.arange(hidden.shape[1], device=hidden.device)
    return packed, positions[None, :] < mask.sum(dim=1, keepdim=True)


def unpack_references(embeddings: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Spread packed reference embeddings [N, D] into [B, max_refs, D] by their item index.

    Args:
        embeddings: One embedding per reference clip.
        order: [N] int64, the batch item each clip belongs to (B = max + 1).

    Returns:
        (unpacked, mask): zero rows and mask 0 (int64) where an item has fewer clips.
    """
    batch = int(order.max().item()) + 1
    counts = torch.bincount(order, minlength=batch)
    slots = int(counts.max().item())
    out = embeddings.new_zeros(batch, slots, embeddings.shape[-1])
    mask = torch.zeros(batch, slots, dtype=torch.long, device=embeddings.device)
    seen = [0] * batch
    for n, item in enumerate(order.tolist()):
        out[item, seen[item]] = embeddings[n]
        mask[item, seen[item]] = 1
        seen[item] += 1
    return out, mask


class LyricEncoder(nn.Module):
    """Lyric token embeddings (text-encoder table lookups) → bidirectional encoder."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Linear(config.text_hidden_dim, config.hidden_size)
        self.layers = make_layers(config, config.num_lyric_encoder_hidden_layers)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encode [B, L, text_dim] with key padding ``mask`` [B, L] → [B, L, hidden]."""
        x = run_encoder_layers(self.layers, self.embed_tokens(embeds), self.config, mask)
        return self.norm(x)


class TimbreEncoder(nn.Module):
    """Reference-audio latents → one timbre embedding per clip (its first frame's output).

    ``special_token`` is loaded but unused: upstream comments out the line that would prepend
    it, and the checkpoints were trained that way.
    """

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Linear(config.timbre_hidden_dim, config.hidden_size)
        self.layers = make_layers(config, config.num_timbre_encoder_hidden_layers)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.special_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))

    def forward(self, clips: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode packed clips [N, frames, 64] → (unpacked [B, refs, hidden], mask [B, refs])."""
        x = run_encoder_layers(self.layers, self.embed_tokens(clips), self.config)
        return unpack_references(self.norm(x)[:, 0, :], order)


class ConditionEncoder(nn.Module):
    """Caption, lyrics and timbre → the packed cross-attention sequence."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.text_projector = nn.Linear(config.text_hidden_dim, config.hidden_size, bias=False)
        self.lyric_encoder = LyricEncoder(config)
        self.timbre_encoder = TimbreEncoder(config)

    def forward(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        lyrics: torch.Tensor,
        lyric_mask: torch.Tensor,
        references: torch.Tensor,
        reference_order: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (encoder_hidden_states [B, S, hidden], encoder_attention_mask [B, S] bool)."""
        lyric_states = self.lyric_encoder(lyrics, lyric_mask)
        timbre, timbre_mask = self.timbre_encoder(references, reference_order)
        packed, mask = pack_sequences(lyric_states, timbre, lyric_mask, timbre_mask)
        return pack_sequences(packed, self.text_projector(text), mask, text_mask)
