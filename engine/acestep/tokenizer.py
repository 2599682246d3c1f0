"""The 5 Hz audio tokenizer (attention pooling + FSQ) and the detokenizer back to 25 Hz.

A cover's source latents pass through ``tokenize`` → ``detokenize`` and become the DiT's
context hints. The 5 Hz LM writes FSQ indices directly; ``FSQ.codes_to_vectors`` turns
them into the same quantized vectors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.acestep.config import DitConfig
from engine.acestep.layers import RMSNorm, make_layers, run_encoder_layers


class FSQ(nn.Module):
    """Finite scalar quantization with symmetry-preserving levels (one quantizer).

    Per dimension with L levels: soft clamp ``tanh(y / c) * c`` with ``c = 1 + 1 / (L - 1)``,
    hard clamp to [-1, 1], level ``floor((L - 1)(y + 1) / 2 + 0.5)``, value ``2 level / (L - 1) - 1``.
    The index is the mixed-radix number of the levels (first dimension least significant).
    """

    # Buffers, registered in __init__ (typed here: nn.Module's attribute lookup is untyped).
    levels: torch.Tensor
    basis: torch.Tensor

    def __init__(self, dim: int, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.project_in = nn.Linear(dim, len(levels))
        self.project_out = nn.Linear(len(levels), dim)
        levels_t = torch.tensor(levels, dtype=torch.int64)
        basis = torch.cumprod(torch.tensor((1, *levels[:-1]), dtype=torch.int64), dim=0)
        self.register_buffer("levels", levels_t, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        self.codebook_size = math.prod(levels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize [B, T, dim] → (quantized [B, T, dim], indices [B, T, 1] int32)."""
        # Rounding runs in float32 so that bf16 weights cannot move a value across a bin edge.
        w, b = self.project_in.weight.float(), self.project_in.bias.float()
        y = torch.nn.functional.linear(x.float(), w, b)
        span = (self.levels - 1).to(torch.float32)
        c = 1.0 + 1.0 / span
        y = (torch.tanh(y / c) * c).clamp(-1.0, 1.0)
        level = torch.floor(span * (y + 1.0) / 2.0 + 0.5).to(torch.int64)
        indices = (level * self.basis).sum(-1, keepdim=True).to(torch.int32)
        return self._level_to_output(level, x.dtype), indices

    def codes_to_vectors(self, indices: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Decode FSQ indices [B, T] or [B, T, 1] (0..codebook_size-1) → quantized [B, T, dim]."""
        if indices.dim() == 3:
            indices = indices[..., 0]
        level = (indices.to(torch.int64)[..., None] // self.basis) % self.levels
        return self._level_to_output(level, dtype)

    def _level_to_output(self, level: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        codes = 2.0 * level.to(torch.float32) / (self.levels - 1).to(torch.float32) - 1.0
        return self.project_out(codes.to(self.project_out.weight.dtype)).to(dtype)


class AttentionPooler(nn.Module):
    """Pools each window of ``pool_window_size`` frames into one vector via a learned CLS token."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Linear(config.hidden_size, config.hidden_size)
        self.special_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.layers = make_layers(config, config.num_attention_pooler_hidden_layers)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T5, P, hidden] → [B, T5, hidden] (no padding mask, as upstream)."""
        batch, windows, _, dim = x.shape
        x = self.embed_tokens(x)
        x = torch.cat([self.special_token.expand(batch, windows, 1, dim), x], dim=2).flatten(0, 1)
        x = self.norm(run_encoder_layers(self.layers, x, self.config))
        return x[:, 0, :].view(batch, windows, dim)


class AudioTokenizer(nn.Module):
    """25 Hz acoustic latents → 5 Hz FSQ codes."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.audio_acoustic_proj = nn.Linear(config.audio_acoustic_hidden_dim, config.hidden_size)
        self.attention_pooler = AttentionPooler(config)
        self.quantizer = FSQ(config.fsq_dim, config.fsq_input_levels)

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T5, P, 64] → (quantized [B, T5, hidden], indices [B, T5, 1])."""
        return self.quantizer(self.attention_pooler(self.audio_acoustic_proj(windows)))

    def pooled(self, windows: torch.Tensor) -> torch.Tensor:
        """The pooled vectors before FSQ (for debugging against the kit)."""
        return self.attention_pooler(self.audio_acoustic_proj(windows))


class Detokenizer(nn.Module):
    """5 Hz quantized vectors → 25 Hz context hints [B, 5 T5, 64]."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Linear(config.hidden_size, config.hidden_size)
        self.special_tokens = nn.Parameter(torch.zeros(1, config.pool_window_size, config.hidden_size))
        self.layers = make_layers(config, config.num_attention_pooler_hidden_layers)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.proj_out = nn.Linear(config.hidden_size, config.audio_acoustic_hidden_dim)

    def forward(self, quantized: torch.Tensor) -> torch.Tensor:
        """Expand each code to ``pool_window_size`` frames and refine them jointly."""
        batch, windows, _ = quantized.shape
        pool = self.config.pool_window_size
        x = self.embed_tokens(quantized).unsqueeze(2).expand(-1, -1, pool, -1) + self.special_tokens[:, None]
        x = run_encoder_layers(self.layers, x.flatten(0, 1), self.config)
        x = self.proj_out(self.norm(x))
        return x.view(batch, windows * pool, -1)
