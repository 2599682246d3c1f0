"""The turbo flow-matching sampler: 8 fixed Euler (ODE) steps, no guidance.

x_t = t · noise + (1 − t) · x_0 and the model predicts v = noise − x_0, so one step is
x ← x − v · (t_i − t_{i+1}) and the last step returns x − v · t_last. The distilled turbo model
only knows three fixed schedules, picked by the nearest shift in {1, 2, 3}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from engine.acestep.decoder import CrossKV, DiTDecoder

SHIFT_TIMESTEPS: dict[float, tuple[float, ...]] = {
    1.0: (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125),
    2.0: (1.0, 14 / 15, 6 / 7, 10 / 13, 2 / 3, 6 / 11, 0.4, 2 / 9),
    3.0: (1.0, 21 / 22, 0.9, 5 / 6, 0.75, 9 / 14, 0.5, 0.3),
}


def turbo_timesteps(shift: float) -> tuple[float, ...]:
    """The schedule of the nearest supported shift (t' = s t / (1 + (s − 1) t) on t = 1 … 1/8)."""
    nearest = min(SHIFT_TIMESTEPS, key=lambda s: abs(s - shift))
    return SHIFT_TIMESTEPS[nearest]


def nearest_shift(shift: float) -> float:
    """The shift whose table ``turbo_timesteps`` uses."""
    return min(SHIFT_TIMESTEPS, key=lambda s: abs(s - shift))


@dataclass
class Phase:
    """One condition the decoder can be called with (its cross K/V computed once)."""

    cross: CrossKV
    context: torch.Tensor  # [B, T, 128]
    encoder_mask: torch.Tensor | None  # [B, S]; None reproduces upstream (no mask)


@dataclass
class SamplerTrace:
    """Per-step inputs and outputs, for comparing with the kit's debug tensors."""

    timesteps: list[torch.Tensor] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)
    velocities: list[torch.Tensor] = field(default_factory=list)


def cover_phase_plan(steps: int, strengths: Sequence[float]) -> list[list[int]]:
    """Which phase (0 = cover, 1 = non-cover) each item uses at each step.

    The first ⌊steps · strength⌋ steps follow the source; the rest follow the caption alone.
    """
    return [[0 if step < int(steps * s) else 1 for s in strengths] for step in range(steps)]


def sample(
    decoder: DiTDecoder | Callable[..., torch.Tensor],
    noise: torch.Tensor,
    phases: Sequence[Phase],
    plan: Sequence[Sequence[int]],
    timesteps: Sequence[float],
    frame_mask: torch.Tensor | None = None,
    on_step: Callable[[int, int], None] | None = None,
    trace: SamplerTrace | None = None,
) -> torch.Tensor:
    """Integrate from ``noise`` [B, T, 64] at t = 1 down to x_0.

    Args:
        decoder: The DiT.
        noise: Initial latents, in the model dtype.
        phases: The conditions; all must share S (pad encoder states to a common length).
        plan: ``plan[step][item]`` = index into ``phases``.
        timesteps: The schedule (``turbo_timesteps``).
        frame_mask: [B, T] valid frames per item, or None (upstream behaviour).
        on_step: Called with (step done, total) after each step.
        trace: Filled with per-step tensors when given.
    """
    batch, dtype = noise.shape[0], noise.dtype
    # Stored as float32 like upstream; step sizes are then taken in float64 from those values.
    table = torch.tensor(list(timesteps), dtype=torch.float32).tolist()
    x = noise
    for step, t_now in enumerate(table):
        phase = _select(phases, plan[step], batch)
        t = torch.full((batch,), t_now, dtype=dtype, device=noise.device)
        v = decoder(x, t, phase.context, phase.cross, frame_mask, phase.encoder_mask)
        if trace is not None:
            trace.timesteps.append(t)
            trace.inputs.append(x)
            trace.velocities.append(v)
        if step == len(table) - 1:
            x = x - v * t[:, None, None]
        else:
            dt = t_now - table[step + 1]
            x = x - v * torch.full((batch, 1, 1), dt, dtype=dtype, device=noise.device)
        if on_step is not None:
            on_step(step + 1, len(table))
    return x


def _select(phases: Sequence[Phase], choice: Sequence[int], batch: int) -> Phase:
    """The phase each item uses at this step, mixed per item when they differ."""
    if len(set(choice)) == 1:
        return phases[choice[0]]
    pick = torch.tensor(choice, device=phases[0].context.device)

    def mix(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(list(tensors))
        index = pick.view(1, batch, *([1] * (stacked.dim() - 2))).expand(1, *stacked.shape[1:])
        return stacked.gather(0, index)[0]

    cross = [
        (mix([p.cross[i][0] for p in phases]), mix([p.cross[i][1] for p in phases]))
        for i in range(len(phases[0].cross))
    ]
    masks = [p.encoder_mask for p in phases]
    mask = None if any(m is None for m in masks) else mix(masks)  # type: ignore[arg-type]
    return Phase(cross, mix([p.context for p in phases]), mask)
