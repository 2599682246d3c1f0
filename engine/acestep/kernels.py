"""How many GPU kernels one step launches, counted on the meta device (no memory, no GPU).

A replayed CUDA graph still pays a few microseconds per kernel, so the planner's decode step and
the DiT's step are sized in kernels. :class:`KernelCounter` runs a step function under a
``TorchDispatchMode`` and counts the aten operations that would launch a kernel:

- every aten op counts once, except the ones that only make a new view of existing memory or
  allocate it: ops whose schema says they return a view (``view``, ``expand``, ``as_strided``,
  ``t``, ``transpose``, ``unsqueeze``, ``slice``, ``select``, ``detach``, ``alias``, ...) and
  ``empty``/``empty_strided``/``_unsafe_view``/``_reshape_alias``/``lift_fresh`` (:data:`FREE`);
- a call of a function that CUDA runs as one fused kernel (:data:`FUSED`: ``F.rms_norm``, which
  is ``aten._fused_rms_norm`` on CUDA, and ``F.scaled_dot_product_attention``, one flash or
  memory-efficient kernel) counts once, and the ops it decomposes into on the meta device do not;
- an op that is several kernels on CUDA, such as ``sort`` (a radix sort), ``cumsum`` (a scan) or
  ``diag_embed`` (a fill and a copy), counts once: the planner step's sort, cumsum and two
  diag_embed may be some 15 kernels more on the GPU than counted.
- The DiT's count is eager; on CUDA the pipeline also compiles its layers, which fuses more.

The counted functions are the ones the CUDA graphs capture (:meth:`FastDecoder._forward` and
``_select_codes``/``_select_meta``) and the one the DiT sampler calls per step
(:class:`DiTDecoder` plus the Euler update), on the official geometries (the configs in the
repository's copy of the facts kit) in bfloat16, as on a GPU.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from engine.acestep.config import DitConfig
from engine.acestep.decoder import DiTDecoder
from engine.acestep.lm.constraints import Vocab
from engine.acestep.lm.fast import FastDecoder
from engine.acestep.lm.qwen3 import FastLM, Geometry, Layer
from engine.acestep.lm.tokenizer import build_tiny_tokenizer

# The official configs (acestep_facts kit), kept in the repository.
CONFIGS = Path(__file__).resolve().parents[2] / "tests" / "data" / "conformance" / "acestep_facts" / "configs"
LM_FOLDERS = {name: f"acestep-5Hz-lm-{name}" for name in ("0.6B", "1.7B", "4B")}
DIT_FOLDERS = {"2B": "acestep-v15-turbo"}
FUSED: tuple[Callable[..., Any], ...] = (F.rms_norm, F.scaled_dot_product_attention)
FREE = frozenset({"empty", "empty_strided", "_unsafe_view", "_reshape_alias", "lift_fresh"})
FRAMES_PER_SECOND = 25  # DiT latent frames per second of audio
ENCODER_TOKENS = 256  # the condition's length; the count does not depend on it
WINDOW = 512  # the attention window of the counted LM step; the count does not depend on it


def launches(func: torch._ops.OpOverload) -> bool:
    """Whether an aten op launches a kernel (see the module docstring)."""
    return not func.is_view and func.overloadpacket.__name__ not in FREE


class KernelCounter(TorchDispatchMode):
    """Counts the kernels launched inside ``with``; ``ops`` holds the count per op name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.fused_depth = 0

    @property
    def total(self) -> int:
        """Kernels counted so far."""
        return sum(self.ops.values())

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        """Count one op (unless inside a fused call), then run it."""
        if not self.fused_depth and launches(func):
            self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


class _FusedCalls(TorchFunctionMode):
    """Counts a :data:`FUSED` call once and hides the ops it decomposes into from the counter."""

    def __init__(self, counter: KernelCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        """Run ``func``; a fused one counts once under its own name."""
        if func not in FUSED or self.counter.fused_depth:
            return func(*args, **(kwargs or {}))
        self.counter.ops[func.__name__] += 1
        self.counter.fused_depth += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.counter.fused_depth -= 1


def count_kernels(step: Callable[[], object]) -> Counter[str]:
    """Run ``step`` once and return the kernels it launches, per op name."""
    counter = KernelCounter()
    with torch.no_grad(), _FusedCalls(counter), counter:
        step()
    return counter.ops


# ---- the planner's decode step -----------------------------------------------------------------


def lm_config(geometry: str) -> dict[str, Any]:
    """The official ``config.json`` of ``acestep-5Hz-lm-<geometry>``."""
    return dict(json.loads((CONFIGS / LM_FOLDERS[geometry] / "config.json").read_text()))


def meta_lm(geo: Geometry, dtype: torch.dtype = torch.bfloat16) -> FastLM:
    """A :class:`FastLM` of ``geo`` whose tensors live on the meta device (shapes only)."""

    def w(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, device="meta", dtype=dtype)

    q, kv = geo.heads * geo.head_dim, geo.kv_heads * geo.head_dim
    layers = [
        Layer(
            w(geo.hidden),
            w(geo.hidden),
            w(q + 2 * kv, geo.hidden),
            w(geo.hidden, q),
            w(geo.heads + geo.kv_heads, geo.head_dim),
            w(2 * geo.intermediate, geo.hidden),
            w(geo.hidden, geo.intermediate),
        )
        for _ in range(geo.layers)
    ]
    embed = w(geo.vocab, geo.hidden)
    return FastLM(geo, embed, layers, w(geo.hidden), embed)


def lm_step_ops(geometry: str = "1.7B", batch: int = 1, guidance: bool = True, phase: str = "codes") -> Counter[str]:
    """Per op name, the kernels of one fast-path decode step (forward + select); see :func:`lm_step_kernels`."""
    geo = Geometry.from_config(lm_config(geometry))
    decoder = FastDecoder(meta_lm(geo), Vocab.build(build_tiny_tokenizer(), geo.vocab), phase, guidance, batch)
    decoder._allocate(batch, WINDOW)
    select = decoder._select_codes if phase == "codes" else decoder._select_meta

    def step() -> None:
        decoder._forward(batch, WINDOW)
        select(batch)

    return count_kernels(step)


def lm_step_kernels(geometry: str = "1.7B", batch: int = 1, guidance: bool = True, phase: str = "codes") -> int:
    """Kernels of one fast-path decode step of the planner (the forward and the select graphs).

    Args:
        geometry: The LM size (``0.6B``, ``1.7B`` or ``4B``), from its official config.
        batch: Requests in the step (the row bucket).
        guidance: Classifier-free guidance (two halves per request).
        phase: ``codes`` (the audio-code phase) or ``meta`` (the metadata phase).
    """
    return sum(lm_step_ops(geometry, batch, guidance, phase).values())


# ---- the DiT's sampling step -------------------------------------------------------------------


def dit_config(geometry: str) -> DitConfig:
    """The official DiT config of ``geometry`` (``2B``: acestep-v15-turbo)."""
    return DitConfig.from_file(CONFIGS / DIT_FOLDERS[geometry] / "config.json")


def dit_step_ops(geometry: str = "2B", batch: int = 1, seconds: float = 30.0) -> Counter[str]:
    """Per op name, the kernels of one DiT sampling step; see :func:`dit_step_kernels`."""
    config = dit_config(geometry)
    with torch.device("meta"):
        decoder = DiTDecoder(config).to(torch.bfloat16)
    frames = round(seconds * FRAMES_PER_SECOND)
    latent = config.audio_acoustic_hidden_dim

    def meta(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, device="meta", dtype=torch.bfloat16)

    with torch.no_grad():
        cross = decoder.cross_kv(meta(batch, ENCODER_TOKENS, config.hidden_size))
    x, context = meta(batch, frames, latent), meta(batch, frames, config.in_channels - latent)

    def step() -> None:
        # As engine.acestep.sampler.sample does per step: the time, the velocity, the Euler update.
        t = torch.full((batch,), 0.5, dtype=x.dtype, device=x.device)
        v = decoder(x, t, context, cross)
        _ = x - v * torch.full((batch, 1, 1), 0.1, dtype=x.dtype, device=x.device)

    return count_kernels(step)


def dit_step_kernels(geometry: str = "2B", batch: int = 1, seconds: float = 30.0) -> int:
    """Kernels of one DiT sampling step (the eager decoder; on CUDA its layers are also compiled).

    Args:
        geometry: The DiT size (``2B``: the turbo model), from its official config.
        batch: Songs in the batch (of equal length: no padding masks, as the engine runs them).
        seconds: Each song's length.
    """
    return sum(dit_step_ops(geometry, batch, seconds).values())
