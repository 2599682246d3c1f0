"""A small Qwen3 forward of our own over the loaded weights, with a static KV cache.

The fast decode path (:mod:`engine.acestep.lm.fast`) needs a forward whose shapes never change
between steps (so that a step can be captured as one CUDA graph) and whose cache rows it can
place, move and reuse itself. ``transformers``' cache classes and attention plumbing change
from release to release (4.5x to 5.x), so this module computes the same Qwen3 math directly on
the checkpoint's tensors: RMSNorm, q/k head norms, rotary embeddings, grouped-query attention,
SwiGLU, tied head. The reference loop (:mod:`engine.acestep.lm.decode`) keeps using the
``transformers`` model; tests check that both give the same logits.

Cache layout: ``[layers, rows, halves, kv_heads, length, head_dim]`` for keys and for values.
A request owns one row; ``halves`` is 2 when guidance is on (the conditional prompt in half 0,
the unconditional prompt in half 1), so that a bucket of the first ``b`` rows is one strided
batch of ``b * halves * kv_heads`` matrices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

# The keys of one layer in a Qwen3 state dict, after ``model.layers.N.``.
_LAYER_KEYS = (
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "self_attn.q_norm.weight",
    "self_attn.k_norm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
)


@dataclass(frozen=True)
class Geometry:
    """The shape numbers of a Qwen3 checkpoint (its ``config.json``)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    eps: float = 1e-6
    rope_theta: float = 1_000_000.0

    @classmethod
    def from_config(cls, config: dict) -> Geometry:
        """Read the geometry from a config dict (``rope_theta`` at the top or in ``rope_parameters``)."""
        heads = int(config["num_attention_heads"])
        rope = config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta") or 1_000_000.0
        return cls(
            hidden=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or int(config["hidden_size"]) // heads),
            intermediate=int(config["intermediate_size"]),
            vocab=int(config["vocab_size"]),
            eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope),
        )


@dataclass
class Layer:
    """One decoder layer's tensors; q, k, v and gate, up are fused (the originals are views of them).

    ``qk_norm`` holds the q head norm once per query head, then the k head norm once per key
    head, so that one norm and one rotation serve queries and keys together.
    """

    norm1: torch.Tensor
    norm2: torch.Tensor
    qkv: torch.Tensor
    o: torch.Tensor
    qk_norm: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen3's RMSNorm: normalised in float32, cast back, then scaled.

    ``F.rms_norm`` without a weight computes in float32 for bf16 input and rounds once, which is
    what Qwen3's own ``weight * normed.to(dtype)`` does, in fewer kernels.
    """
    return weight * F.rms_norm(x, (x.shape[-1],), eps=eps)


def _head_norms(geo: Geometry, q_norm: torch.Tensor, k_norm: torch.Tensor) -> torch.Tensor:
    return torch.cat([q_norm.expand(geo.heads, -1), k_norm.expand(geo.kv_heads, -1)])


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding ``x * cos + rotate_half(x) * sin``: the half turn is a roll, its sign is in the table."""
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * signed_sin


class FastLM:
    """Qwen3 weights plus a prefill and a fixed-shape decode step over an external KV cache."""

    def __init__(
        self,
        geo: Geometry,
        embed: torch.Tensor,
        layers: list[Layer],
        norm: torch.Tensor,
        head: torch.Tensor,
        max_positions: int = 8192,
    ) -> None:
        self.geo = geo
        self.embed = embed
        self.layers = layers
        self.norm = norm
        self.head = head
        self.device = embed.device
        self.dtype = embed.dtype
        d = geo.head_dim
        inv_freq = 1.0 / (geo.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float) / d))
        freqs = torch.arange(max_positions, dtype=torch.float)[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = emb.cos().to(self.device, self.dtype)
        sin = emb.sin()
        half = d // 2
        self.sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1).to(self.device, self.dtype)  # signed

    # ---- building --------------------------------------------------------------------------

    @classmethod
    def from_state(cls, geo: Geometry, state: dict[str, torch.Tensor]) -> FastLM:
        """Build from a Qwen3 state dict (``model.``-prefixed keys; the head may be tied)."""
        layers = []
        for i in range(geo.layers):
            t = {k: state[f"model.layers.{i}.{k}"] for k in _LAYER_KEYS}
            layers.append(
                Layer(
                    norm1=t["input_layernorm.weight"],
                    norm2=t["post_attention_layernorm.weight"],
                    qkv=torch.cat(
                        [t["self_attn.q_proj.weight"], t["self_attn.k_proj.weight"], t["self_attn.v_proj.weight"]]
                    ),
                    o=t["self_attn.o_proj.weight"],
                    qk_norm=_head_norms(geo, t["self_attn.q_norm.weight"], t["self_attn.k_norm.weight"]),
                    gate_up=torch.cat([t["mlp.gate_proj.weight"], t["mlp.up_proj.weight"]]),
                    down=t["mlp.down_proj.weight"],
                )
            )
        embed = state["model.embed_tokens.weight"]
        head = state.get("lm_head.weight", embed)
        return cls(geo, embed, layers, state["model.norm.weight"], head)

    @classmethod
    def from_hf(cls, model: torch.nn.Module, config: dict) -> FastLM:
        """Build over a loaded ``Qwen3ForCausalLM`` without doubling its memory.

        The fused q/k/v and gate/up tensors become the storage; the model's own parameters are
        rebound to views of them, so both paths keep computing with the same numbers.
        """
        geo = Geometry.from_config(config)
        state = dict(model.state_dict())
        fast = cls.from_state(geo, state)
        inner: Any = model.model
        q, kv = geo.heads * geo.head_dim, geo.kv_heads * geo.head_dim
        for layer, mine in zip(inner.layers, fast.layers, strict=True):
            attn, mlp = layer.self_attn, layer.mlp
            attn.q_proj.weight.data = mine.qkv[:q]
            attn.k_proj.weight.data = mine.qkv[q : q + kv]
            attn.v_proj.weight.data = mine.qkv[q + kv :]
            mlp.gate_proj.weight.data = mine.gate_up[: geo.intermediate]
            mlp.up_proj.weight.data = mine.gate_up[geo.intermediate :]
        return fast

    @classmethod
    def random(cls, geo: Geometry, device: str | torch.device, dtype: torch.dtype, seed: int = 0) -> FastLM:
        """Random weights of the given geometry (for speed measurements: speed ignores the values)."""
        gen = torch.Generator(device=device).manual_seed(seed)

        def w(*shape: int) -> torch.Tensor:
            return (torch.randn(*shape, generator=gen, device=device, dtype=torch.float32) * 0.02).to(dtype)

        def ones(n: int) -> torch.Tensor:
            return torch.ones(n, device=device, dtype=dtype)

        q, kv = geo.heads * geo.head_dim, geo.kv_heads * geo.head_dim
        layers = [
            Layer(
                ones(geo.hidden),
                ones(geo.hidden),
                w(q + 2 * kv, geo.hidden),
                w(geo.hidden, q),
                _head_norms(geo, ones(geo.head_dim), ones(geo.head_dim)),
                w(2 * geo.intermediate, geo.hidden),
                w(geo.hidden, geo.intermediate),
            )
            for _ in range(geo.layers)
        ]
        embed = w(geo.vocab, geo.hidden)
        return cls(geo, embed, layers, ones(geo.hidden), embed)

    # ---- cache -----------------------------------------------------------------------------

    def new_cache(self, rows: int, halves: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zeroed key and value caches ``[layers, rows, halves, kv_heads, length, head_dim]``."""
        g = self.geo
        shape = (g.layers, rows, halves, g.kv_heads, length, g.head_dim)
        return (
            torch.zeros(shape, device=self.device, dtype=self.dtype),
            torch.zeros(shape, device=self.device, dtype=self.dtype),
        )

    # ---- math ------------------------------------------------------------------------------

    def _qkv(
        self, layer: Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.geo
        h = rms_norm(x, layer.norm1, g.eps)
        qkv = h @ layer.qkv.T
        qk_size = (g.heads + g.kv_heads) * g.head_dim
        qk = qkv[..., :qk_size].unflatten(-1, (g.heads + g.kv_heads, g.head_dim))
        v = qkv[..., qk_size:].unflatten(-1, (g.kv_heads, g.head_dim))
        qk = _rotate(rms_norm(qk, layer.qk_norm, g.eps), cos, sin)
        return h, qk[..., : g.heads, :], qk[..., g.heads :, :], v

    def _mlp(self, layer: Layer, x: torch.Tensor) -> torch.Tensor:
        h = rms_norm(x, layer.norm2, self.geo.eps)
        gate, up = (h @ layer.gate_up.T).chunk(2, dim=-1)
        return x + (F.silu(gate) * up) @ layer.down.T

    def prefill(self, ids: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, row: int, half: int) -> None:
        """Run one prompt (1-D ids) and write its keys and values at positions ``0..len-1``."""
        n = int(ids.shape[0])
        if n == 0:
            return
        x = self.embed[ids]
        cos, sin = self.cos[:n, None, :], self.sin[:n, None, :]
        for i, layer in enumerate(self.layers):
            _, q, k, v = self._qkv(layer, x, cos, sin)
            keys[i, row, half, :, :n] = k.transpose(0, 1)
            values[i, row, half, :, :n] = v.transpose(0, 1)
            out = F.scaled_dot_product_attention(
                q.transpose(0, 1)[None],
                k.transpose(0, 1)[None],
                v.transpose(0, 1)[None],
                is_causal=True,
                enable_gqa=True,
            )
            x = x + out[0].transpose(0, 1).flatten(-2) @ layer.o.T
            x = self._mlp(layer, x)

    def decode(
        self, tokens: torch.Tensor, pos: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, window: int
    ) -> torch.Tensor:
        """One step for the first ``b`` cache rows: fixed shapes, no host synchronisation.

        Written for few kernels (each replayed kernel costs microseconds, the step's budget is
        ~500; see :mod:`engine.acestep.kernels`): per layer one fused RMSNorm with its weight per
        norm, the rotary embedding as one batched product with a per-row rotation matrix built once
        per step, one fused attention call over the cache window (the query heads of a KV head
        are its query "sequence", so no grouped-query support is needed), and the residual adds
        inside the output and down projections (``addmm_``).

        Args:
            tokens: ``[b, halves]`` input token of each row and half.
            pos: ``[b, halves]`` its position (also where its key and value are written).
            keys: The key cache (``new_cache``); rows ``0..b-1`` are used.
            values: The value cache.
            window: Attend to cache positions ``0..window-1`` (>= every ``pos + 1``).

        Returns:
            The final normed hidden states ``[b, halves, hidden]``.
        """
        g = self.geo
        b, halves = tokens.shape
        n = b * halves
        rows = torch.arange(n, device=tokens.device)
        flat_pos = pos.flatten()
        x = self.embed[tokens.flatten()]  # [n, hidden], the residual stream, updated in place
        rotation = self._rotation(flat_pos)
        # Additive mask over the window, built once per step and shared by every layer and head.
        bias = torch.zeros((n, 1, 1, window), dtype=x.dtype, device=x.device)
        bias.masked_fill_(torch.arange(window, device=x.device) > flat_pos[:, None, None, None], float("-inf"))
        groups = g.heads // g.kv_heads
        for i, layer in enumerate(self.layers):
            q, k, v = self._qkv_rotated(layer, x, rotation)
            kc, vc = keys[i, :b].flatten(0, 1), values[i, :b].flatten(0, 1)  # [n, kv, length, d]
            kc[rows, :, flat_pos] = k
            vc[rows, :, flat_pos] = v
            qg = q.unflatten(1, (g.kv_heads, groups))  # [n, kv, groups, d]
            out = F.scaled_dot_product_attention(
                qg, kc[:, :, :window], vc[:, :, :window], attn_mask=bias, scale=g.head_dim**-0.5
            )
            x.addmm_(out.flatten(1), layer.o.T)
            h = F.rms_norm(x, (g.hidden,), layer.norm2, g.eps)
            gate, up = (h @ layer.gate_up.T).chunk(2, dim=-1)
            x.addmm_(F.silu(gate) * up, layer.down.T)
        return F.rms_norm(x, (g.hidden,), self.norm, g.eps).unflatten(0, (b, halves))

    def _rotation(self, pos: torch.Tensor) -> torch.Tensor:
        """Per position ``[n, d, d]``: ``x @ R`` is ``x * cos + roll(x, d / 2) * signed_sin``."""
        half = self.geo.head_dim // 2
        return torch.diag_embed(self.cos[pos]) + torch.diag_embed(self.sin[pos]).roll(half, -2)

    def _qkv_rotated(
        self, layer: Layer, x: torch.Tensor, rotation: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries ``[n, heads, d]``, keys and values ``[n, kv_heads, d]`` of ``x`` ``[n, hidden]``."""
        g = self.geo
        qkv = F.rms_norm(x, (g.hidden,), layer.norm1, g.eps) @ layer.qkv.T
        qk_size = (g.heads + g.kv_heads) * g.head_dim
        qk = qkv[:, :qk_size].unflatten(-1, (g.heads + g.kv_heads, g.head_dim))
        qk = torch.bmm(rms_norm(qk, layer.qk_norm, g.eps), rotation)
        v = qkv[:, qk_size:].unflatten(-1, (g.kv_heads, g.head_dim))
        return qk[:, : g.heads], qk[:, g.heads :], v

    def logits(self, hidden: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Float32 logits of head rows ``start..stop`` (the code phase needs only the code rows)."""
        return (hidden @ self.head[start:stop].T).float()
