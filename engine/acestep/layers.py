"""Building blocks shared by every ACE-Step stack: norms, RoPE, attention, encoder layers.

Semantics follow the official eager/SDPA path (see the conformance kit's README §6):
bidirectional attention, an optional window |i - j| <= w, key padding as an additive mask
filled with the dtype's most negative finite value, per-head RMSNorm on q and k before
half-split RoPE, and grouped KV heads where query head h reads KV head h // groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.acestep.config import DitConfig


class RMSNorm(nn.Module):
    """RMSNorm computed in float32, as Qwen3 does, then scaled in the input dtype.

    ``F.rms_norm`` without a weight upcasts a bf16 input to float32, normalises and rounds once:
    upstream's ``x.float() * rsqrt(mean(x**2) + eps)`` then ``.to(dtype)``, as one fused kernel on
    CUDA instead of about six. The weight is applied after the rounding, as upstream does.
    """

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize over the last dimension."""
        return self.weight * F.rms_norm(x, (x.shape[-1],), eps=self.eps)


class SwiGLU(nn.Module):
    """The Qwen3 gated MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rope(
    length: int, head_dim: int, theta: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Half-split rotary tables for positions 0..length-1, computed in float32.

    Returns:
        (cos, signed sin), each [length, head_dim] in ``dtype``; the sin's first half is negated
        (see :func:`rotate`).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
    positions = torch.arange(length, device=device, dtype=torch.float32)
    freqs = positions[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    sin = emb.sin()
    half = head_dim // 2
    return emb.cos().to(dtype), torch.cat([-sin[:, :half], sin[:, half:]], dim=-1).to(dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Half-split RoPE ``x * cos + rotate_half(x) * sin`` with the half turn as one roll.

    ``rotate_half(x) = [-x2, x1]`` is ``roll(x) = [x2, x1]`` with the sign moved into the table
    (``signed_sin = [-sin1, sin2]``, :func:`rope`): the same products bit for bit (a sign flip is
    exact), in one kernel instead of a negation and a concatenation.
    """
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * signed_sin


def attention_bias(
    length: int,
    key_mask: torch.Tensor | None,
    window: int | None,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor | None:
    """Additive self-attention mask [B or 1, 1, L, L]; None when nothing is masked.

    Args:
        length: Sequence length L.
        key_mask: [B, L], true/non-zero where a key is valid, or None.
        window: Bidirectional window w (keys with |i - j| <= w are kept), or None.
        dtype: The score dtype; masked entries get its most negative finite value.
        device: Where to build the mask.
    """
    keep = torch.ones(1, 1, length, length, dtype=torch.bool, device=device)
    if window is not None:
        idx = torch.arange(length, device=device)
        keep = keep & ((idx[:, None] - idx[None, :]).abs() <= window)
    if key_mask is not None:
        keep = keep & key_mask.to(torch.bool)[:, None, None, :]
    if window is None and key_mask is None:
        return None
    bias = torch.zeros(keep.shape, dtype=dtype, device=device)
    return bias.masked_fill(~keep, torch.finfo(dtype).min)


def key_padding_bias(key_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive cross-attention mask [B, 1, 1, S] from a [B, S] key mask (None: attend to all)."""
    if key_mask is None:
        return None
    bias = torch.zeros(key_mask.shape[0], 1, 1, key_mask.shape[1], dtype=dtype, device=key_mask.device)
    return bias.masked_fill(~key_mask.to(torch.bool)[:, None, None, :], torch.finfo(dtype).min)


@dataclass(frozen=True)
class Band:
    """A sliding window to compute block by block (``banded_attention``) instead of as an [L, L] bias."""

    window: int
    key_mask: torch.Tensor | None  # [B, L], true where a key is valid
    # The blocks' additive mask (``band_bias``), when made once for every layer of a step.
    bias: torch.Tensor | None = None


def band_bias(band: Band, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The additive mask [B or 1 times blocks, 1, w, 3w] of ``banded_attention``'s blocks.

    It depends only on the length, the window and the key mask, so a caller running several
    layers makes it once (``Band.bias``) instead of once per layer (about 15 kernels each).
    """
    w = band.window
    blocks = -(-length // w)
    pad = blocks * w - length
    row = torch.arange(w, device=device)[:, None]
    col = torch.arange(3 * w, device=device)[None, :]
    position = torch.arange(blocks, device=device)[:, None, None] * w - w + col  # key position per block
    keep = ((col - w - row).abs() <= w) & (position >= 0) & (position < length)  # [blocks, w, 3w]
    if band.key_mask is None:
        keep = keep[None]
    else:
        valid = F.pad(band.key_mask.to(torch.bool), (w, pad + w), value=False).unfold(1, 3 * w, w)
        keep = keep[None] & valid[:, :, None, :]  # [B, blocks, w, 3w]
    bias = torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill(~keep, torch.finfo(dtype).min)
    return bias.reshape(-1, 1, w, 3 * w)


def banded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, band: Band, scale: float) -> torch.Tensor:
    """Attention where query i reads the keys with |i - j| <= w, in blocks of w queries.

    Each block reads the 3w keys around it, so the cost is L · 3w instead of L². For every query
    with at least one valid key in its window, this is the dense call with the window bias (the
    same keys, the same softmax); rows with none are padding, which the callers discard.

    Args:
        q: Queries [B, H, L, D].
        k: Keys with the same heads (grouped KV heads already repeated).
        v: Values, like the keys.
        band: The window and the key padding mask.
        scale: Softmax scale.
    """
    b, h, length, d = q.shape
    w = band.window
    blocks = -(-length // w)
    pad = blocks * w - length
    # Blocks go into the batch dimension, so the mask is shared by the heads (a broadcast, not a copy).
    qb = F.pad(q, (0, 0, 0, pad)).view(b, h, blocks, w, d).transpose(1, 2).reshape(b * blocks, h, w, d)

    def windows(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, w, pad + w)).unfold(2, 3 * w, w)  # [B, H, blocks, D, 3w]
        return x.permute(0, 2, 1, 4, 3).reshape(b * blocks, h, 3 * w, d)

    bias = band.bias if band.bias is not None else band_bias(band, length, q.dtype, q.device)
    if band.key_mask is None:  # one mask for every item: broadcast over the batch, not copied
        bias = bias[None].expand(b, -1, -1, -1, -1).reshape(b * blocks, 1, w, 3 * w)
    out = F.scaled_dot_product_attention(qb, windows(k), windows(v), attn_mask=bias, scale=scale)
    return out.view(b, blocks, h, w, d).transpose(1, 2).reshape(b, h, blocks * w, d)[:, :, :length]


class Attention(nn.Module):
    """Grouped-query attention with per-head q/k RMSNorm; RoPE only for self-attention."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        hd = config.head_dim
        self.heads, self.kv_heads, self.head_dim = config.num_attention_heads, config.num_key_value_heads, hd
        self.q_proj = nn.Linear(config.hidden_size, self.heads * hd, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(self.heads * hd, config.hidden_size, bias=False)
        self.q_norm = RMSNorm(hd, config.rms_norm_eps)
        self.k_norm = RMSNorm(hd, config.rms_norm_eps)

    def keys_values(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V for ``source`` [B, S, D] as [B, kv_heads, S, head_dim] (no RoPE)."""
        shape = (*source.shape[:-1], self.kv_heads, self.head_dim)
        k = self.k_norm(self.k_proj(source).view(shape)).transpose(1, 2)
        v = self.v_proj(source).view(shape).transpose(1, 2)
        return k, v

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | Band | None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` [B, L, D] to itself (``kv`` None) or to precomputed cross K/V.

        Args:
            x: Queries' hidden states.
            bias: Additive mask broadcastable to [B, heads, L, S], a ``Band`` (self-attention in a
                window, computed block by block), or None.
            rotary: (cos, sin) for self-attention.
            kv: Cross-attention keys and values from ``keys_values``.
        """
        q = self.q_norm(self.q_proj(x).view(*x.shape[:-1], self.heads, self.head_dim)).transpose(1, 2)
        if kv is None:
            k, v = self.keys_values(x)
            if rotary is not None:
                q, k = rotate(q, *rotary), rotate(k, *rotary)
        else:
            k, v = kv
        groups = self.heads // self.kv_heads
        if bias is None and q.device.type in ("cuda", "meta"):
            # Flash attention reads the shared KV heads itself; no copies of K and V. (On the meta
            # device, engine.acestep.kernels counts the kernels of this CUDA path.)
            out = F.scaled_dot_product_attention(q, k, v, scale=self.head_dim**-0.5, enable_gqa=groups > 1)
            return self.o_proj(out.transpose(1, 2).reshape(*x.shape[:-1], -1))
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        if isinstance(bias, Band):
            out = banded_attention(q, k, v, bias, self.head_dim**-0.5)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.head_dim**-0.5)
        return self.o_proj(out.transpose(1, 2).reshape(*x.shape[:-1], -1))


class EncoderLayer(nn.Module):
    """Pre-norm bidirectional transformer layer used by every encoder stack."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.self_attn = Attention(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None, rotary: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Self-attention then MLP, each with a plain residual."""
        x = x + self.self_attn(self.input_layernorm(x), bias, rotary)
        return x + self.mlp(self.post_attention_layernorm(x))


def run_encoder_layers(
    layers: nn.ModuleList, x: torch.Tensor, config: DitConfig, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Run an encoder stack; layer i is windowed when ``config.layer_types[i]`` says so."""
    length = x.shape[1]
    rotary = rope(length, config.head_dim, config.rope_theta, x.dtype, x.device)
    full = attention_bias(length, key_mask, None, x.dtype, x.device)
    sliding = attention_bias(length, key_mask, config.sliding_window, x.dtype, x.device)
    for i, layer in enumerate(layers):
        x = layer(x, sliding if config.is_sliding(i) else full, rotary)
    return x


def make_layers(config: DitConfig, count: int) -> nn.ModuleList:
    """``count`` encoder layers."""
    return nn.ModuleList(EncoderLayer(config) for _ in range(count))
