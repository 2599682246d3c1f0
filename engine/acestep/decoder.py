"""The DiT decoder: patching, timestep conditioning, AdaLN layers with cross-attention, un-patching.

The official decoder ignores both padding masks. ``forward`` takes optional masks: without
them it computes exactly what upstream computes (the conformance cases call it that way); with
them a track's velocity does not depend on the other tracks in its batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from engine.acestep.config import DitConfig
from engine.acestep.layers import (
    Attention,
    Band,
    RMSNorm,
    SwiGLU,
    attention_bias,
    band_bias,
    key_padding_bias,
    rope,
)

CrossKV = list[tuple[torch.Tensor, torch.Tensor]]


class TimestepEmbedding(nn.Module):
    """Sinusoid of t·1000 ([cos | sin], 256 dims) → MLP → ``temb`` and its 6-way projection."""

    def __init__(self, hidden: int, channels: int = 256) -> None:
        super().__init__()
        self.channels = channels
        self.linear_1 = nn.Linear(channels, hidden)
        self.linear_2 = nn.Linear(hidden, hidden)
        self.time_proj = nn.Linear(hidden, hidden * 6)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B] → (temb [B, H], projection [B, 6, H])."""
        half = self.channels // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = (t * 1000)[:, None].float() * freqs[None]
        sinusoid = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(t.dtype)
        temb = self.linear_2(F.silu(self.linear_1(sinusoid)))
        return temb, self.time_proj(F.silu(temb)).unflatten(1, (6, -1))


class DiTLayer(nn.Module):
    """AdaLN self-attention (gated) → cross-attention (plain residual) → AdaLN SwiGLU (gated)."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.self_attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.cross_attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.cross_attn = Attention(config)
        self.mlp_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)
        self.scale_shift_table = nn.Parameter(torch.zeros(1, 6, config.hidden_size))

    def forward(
        self,
        x: torch.Tensor,
        modulation: torch.Tensor,
        self_bias: torch.Tensor | Band | None,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cross_kv: tuple[torch.Tensor, torch.Tensor],
        cross_bias: torch.Tensor | None,
    ) -> torch.Tensor:
        """One layer over patches ``x`` [B, N, H]; ``modulation`` is [B, 6, H]."""
        shift, scale, gate, mlp_shift, mlp_scale, mlp_gate = (self.scale_shift_table + modulation).chunk(6, dim=1)
        h = (self.self_attn_norm(x) * (1 + scale) + shift).type_as(x)
        x = (x + self.self_attn(h, self_bias, rotary) * gate).type_as(x)
        x = x + self.cross_attn(self.cross_attn_norm(x).type_as(x), cross_bias, kv=cross_kv)
        h = (self.mlp_norm(x) * (1 + mlp_scale) + mlp_shift).type_as(x)
        return (x + self.mlp(h) * mlp_gate).type_as(x)

    def forward_attending(
        self,
        x: torch.Tensor,
        modulation: torch.Tensor,
        self_bias: torch.Tensor | Band | None,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cross_kv: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` (no encoder mask) that also returns the cross-attention probabilities [B, heads, N, S].

        Only the timing pass calls it, so the sampling path stays as it is.
        """
        shift, scale, gate, mlp_shift, mlp_scale, mlp_gate = (self.scale_shift_table + modulation).chunk(6, dim=1)
        h = (self.self_attn_norm(x) * (1 + scale) + shift).type_as(x)
        x = (x + self.self_attn(h, self_bias, rotary) * gate).type_as(x)
        normed = self.cross_attn_norm(x).type_as(x)
        probabilities = cross_probabilities(self.cross_attn, normed, cross_kv)
        x = x + self.cross_attn(normed, None, kv=cross_kv)
        h = (self.mlp_norm(x) * (1 + mlp_scale) + mlp_shift).type_as(x)
        return (x + self.mlp(h) * mlp_gate).type_as(x), probabilities


def cross_probabilities(attention: Attention, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Cross-attention probabilities from ``x`` [B, L, D] to precomputed keys: [B, heads, L, S].

    Upstream's eager path under ``output_attentions``: scores in the input dtype, softmax in
    float32, cast back; no mask (upstream's decoder gives its cross-attention none).
    """
    q = attention.q_proj(x).view(*x.shape[:-1], attention.heads, attention.head_dim)
    q = attention.q_norm(q).transpose(1, 2)
    k = kv[0].repeat_interleave(attention.heads // attention.kv_heads, dim=1)
    scores = torch.matmul(q, k.transpose(2, 3)) * attention.head_dim**-0.5
    return F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)


@dataclass
class DecoderTrace:
    """Intermediates of one decoder call, for locating a mismatch against the kit."""

    temb: torch.Tensor | None = None
    timestep_proj: torch.Tensor | None = None
    proj_in: torch.Tensor | None = None
    layer_outputs: list[torch.Tensor] | None = None


class DiTDecoder(nn.Module):
    """Predicts the flow velocity (noise − data) for latents x_t given the condition."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.config = config
        hidden, patch = config.hidden_size, config.patch_size
        # Index 1 of a Sequential upstream (0 and 2 are transposes), hence the ModuleDict-like names.
        self.proj_in = nn.Sequential(nn.Identity(), nn.Conv1d(config.in_channels, hidden, patch, stride=patch))
        self.time_embed = TimestepEmbedding(hidden)
        self.time_embed_r = TimestepEmbedding(hidden)
        self.condition_embedder = nn.Linear(hidden, hidden)
        self.layers = nn.ModuleList(DiTLayer(config) for _ in range(config.num_hidden_layers))
        self.norm_out = RMSNorm(hidden, config.rms_norm_eps)
        self.proj_out = nn.Sequential(
            nn.Identity(), nn.ConvTranspose1d(hidden, config.audio_acoustic_hidden_dim, patch, stride=patch)
        )
        self.scale_shift_table = nn.Parameter(torch.zeros(1, 2, hidden))
        # What runs each layer: the layers themselves, or compiled wrappers (``compile_layers``).
        self.layer_calls: list[Callable[..., torch.Tensor]] | None = None
        # Windowed layers block by block (``banded_attention``): None = on CUDA for long sequences.
        self.banded: bool | None = None

    def compile_layers(self, mode: str | None = None) -> None:
        """Regional compilation: every layer through ``torch.compile``, sharing one graph (same code)."""
        self.layer_calls = [torch.compile(layer, mode=mode) for layer in self.layers]  # type: ignore[misc]

    def cross_kv(self, encoder_states: torch.Tensor) -> CrossKV:
        """Cross-attention K/V of every layer; computed once per condition, reused at every step."""
        projected = self.condition_embedder(encoder_states)
        return [cast(DiTLayer, layer).cross_attn.keys_values(projected) for layer in self.layers]

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        cross: CrossKV,
        frame_mask: torch.Tensor | None = None,
        encoder_mask: torch.Tensor | None = None,
        trace: DecoderTrace | None = None,
    ) -> torch.Tensor:
        """Velocity for ``x_t`` [B, T, 64] at per-item time ``t`` [B] (r = t, as at inference).

        Args:
            x_t: Noisy latents.
            t: Flow time per item.
            context: [B, T, 128] = source latents (or hints) | chunk mask.
            cross: ``cross_kv(encoder_states)``.
            frame_mask: [B, T] true for a track's own frames; None reproduces upstream (no mask).
            encoder_mask: [B, S] valid encoder positions; None reproduces upstream.
            trace: Filled with intermediates when given.
        """
        temb, modulation = self._timestep(t, trace)
        length = x_t.shape[1]
        h = self._patches(x_t, context, frame_mask)
        if trace is not None:
            trace.proj_in, trace.layer_outputs = h, []
        h = self._layers(h, modulation, cross, self._patch_mask(frame_mask, h.shape[1]), encoder_mask, trace)
        shift, scale = (self.scale_shift_table + temb.unsqueeze(1)).chunk(2, dim=1)
        h = (self.norm_out(h) * (1 + scale) + shift).type_as(h)
        return self.proj_out[1](h.transpose(1, 2)).transpose(1, 2)[:, :length]

    def cross_attention(
        self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, cross: CrossKV, layers: Sequence[int]
    ) -> dict[int, torch.Tensor]:
        """The cross-attention probabilities of ``layers`` for one pass: {layer: [B, heads, patches, S]}.

        Upstream's ``decoder(..., output_attentions=True, custom_layers_config=...)``: the same
        layers on the same input, one track at a time (no masks). Layers after the last one
        asked for cannot change these, so they are skipped.
        """
        _, modulation = self._timestep(t, None)
        h = self._patches(x_t, context, None)
        cfg = self.config
        rotary = rope(h.shape[1], cfg.head_dim, cfg.rope_theta, h.dtype, h.device)
        sliding = attention_bias(h.shape[1], None, cfg.sliding_window, h.dtype, h.device)
        wanted, found = set(layers), {}
        for i, layer in enumerate(self.layers[: max(wanted) + 1]):
            bias = sliding if cfg.is_sliding(i) else None
            if i in wanted:
                h, found[i] = cast(DiTLayer, layer).forward_attending(h, modulation, bias, rotary, cross[i])
            else:
                h = layer(h, modulation, bias, rotary, cross[i], None)
        return found

    def _patches(self, x_t: torch.Tensor, context: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
        """[context | x_t], zero-padded to whole patches, through the patch convolution: [B, N, H]."""
        h = torch.cat([context, x_t], dim=-1)
        if frame_mask is not None:
            # A track alone is zero-padded to whole patches; pad it the same way inside a batch.
            h = h * frame_mask[..., None].to(h.dtype)
        h = F.pad(h, (0, 0, 0, (-x_t.shape[1]) % self.config.patch_size))
        return cast(torch.Tensor, self.proj_in[1](h.transpose(1, 2)).transpose(1, 2))

    def _timestep(self, t: torch.Tensor, trace: DecoderTrace | None) -> tuple[torch.Tensor, torch.Tensor]:
        temb_t, proj_t = self.time_embed(t)
        temb_r, proj_r = self.time_embed_r(t - t)
        temb, modulation = temb_t + temb_r, proj_t + proj_r
        if trace is not None:
            trace.temb, trace.timestep_proj = temb, modulation
        return temb, modulation

    def _patch_mask(self, frame_mask: torch.Tensor | None, patches: int) -> torch.Tensor | None:
        if frame_mask is None:
            return None
        padded = F.pad(frame_mask.to(torch.bool), (0, patches * self.config.patch_size - frame_mask.shape[1]))
        return padded.view(padded.shape[0], patches, -1).any(-1)

    def _banded(self, length: int) -> bool:
        """Whether windowed layers go block by block: it pays once a window is well under the sequence."""
        window = self.config.sliding_window
        if window is None or window <= 0:
            return False
        chosen: bool | None = self.banded
        if chosen is not None:
            return chosen
        on_gpu = self.proj_in[1].weight.device.type in ("cuda", "meta")  # meta: counting CUDA's kernels
        return on_gpu and length > 4 * window

    def _layers(
        self,
        h: torch.Tensor,
        modulation: torch.Tensor,
        cross: CrossKV,
        patch_mask: torch.Tensor | None,
        encoder_mask: torch.Tensor | None,
        trace: DecoderTrace | None,
    ) -> torch.Tensor:
        cfg = self.config
        rotary = rope(h.shape[1], cfg.head_dim, cfg.rope_theta, h.dtype, h.device)
        full = attention_bias(h.shape[1], patch_mask, None, h.dtype, h.device)
        sliding: torch.Tensor | Band | None
        if self._banded(h.shape[1]):
            band = Band(cfg.sliding_window, patch_mask)  # type: ignore[arg-type]
            sliding = Band(band.window, patch_mask, band_bias(band, h.shape[1], h.dtype, h.device))
        else:
            sliding = attention_bias(h.shape[1], patch_mask, cfg.sliding_window, h.dtype, h.device)
        cross_bias = key_padding_bias(encoder_mask, h.dtype)
        calls = self.layer_calls or list(self.layers)
        for i, layer in enumerate(calls):
            h = layer(h, modulation, sliding if cfg.is_sliding(i) else full, rotary, cross[i], cross_bias)
            if trace is not None and trace.layer_outputs is not None:
                trace.layer_outputs.append(h)
        return h
