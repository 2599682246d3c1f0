"""Batched, constrained, seeded decoding with a KV cache and classifier-free guidance.

Several requests share one decode loop. Each request has one conditional row and, with
guidance, one unconditional row; per step its logits are combined as
``uncond + scale * (cond - uncond)``, masked by the request's own :class:`Constraint`, cut to
the top-p nucleus, divided by the temperature and sampled, and the token is fed to both rows.

Sampling is Gumbel-max with a per-request ``torch.Generator``: argmax(logits/T + G) draws
exactly from softmax(logits/T), and a result only changes when the two best perturbed scores
are within rounding noise of each other. That makes a request's tokens independent of which
other requests share its batch (whose padding changes the floating-point reduction order),
not only of its own seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from engine.acestep.lm.constraints import Constraint

NEG_INF = float("-inf")


@dataclass
class DecodeJob:
    """One request in a decode loop.

    Args:
        prompt: Prompt token ids (conditional row).
        constraint: This request's own constraint state.
        seed: Sampling seed (uint32).
        uncond_prompt: Prompt ids of the unconditional row, used when ``cfg_scale > 1``.
        cfg_scale: Guidance scale (1 disables guidance).
        temperature: Sampling temperature (<= 0 means greedy).
        top_p: Nucleus mass, or None for no cut.
        max_new_tokens: Safety cap; the constraint normally ends the request first.
    """

    prompt: list[int]
    constraint: Constraint
    seed: int
    uncond_prompt: list[int] | None = None
    cfg_scale: float = 1.0
    temperature: float = 0.85
    top_p: float | None = 0.9
    max_new_tokens: int = 4096
    tokens: list[int] = field(default_factory=list)

    @property
    def guided(self) -> bool:
        """Whether this request decodes an unconditional row too."""
        return self.uncond_prompt is not None and self.cfg_scale > 1.0


def top_p_filter(logits: torch.Tensor, top_p: float | None, head: int = 256) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches ``top_p`` (always the first).

    A trained LM's nucleus is usually a few tokens, so the ``head`` best are tried first and
    the full sort runs only when they do not reach ``top_p``.
    """
    if top_p is None or top_p >= 1.0:
        return logits
    probs = torch.softmax(logits, dim=-1)
    k = min(head, probs.numel())
    top, order = torch.topk(probs, k)
    if float(top.sum()) < top_p and k < probs.numel():
        top, order = torch.sort(probs, descending=True)
    keep_sorted = top.cumsum(-1) - top <= top_p
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(0, order, keep_sorted)
    return logits.masked_fill(~keep, NEG_INF)


def sample(logits: torch.Tensor, temperature: float, top_p: float | None, gen: torch.Generator) -> int:
    """Sample one token from masked float32 logits (top-p, then temperature, as upstream)."""
    if temperature <= 0:
        return int(logits.argmax())
    logits = top_p_filter(logits, top_p)
    u = torch.rand(logits.shape, generator=gen, device=logits.device, dtype=torch.float32)
    gumbel = -torch.log(-torch.log(u.clamp_(min=1e-20, max=1.0 - 1e-7)))
    return int((logits / temperature + gumbel).argmax())


def _choose(job: DecodeJob, logits: torch.Tensor, gen: torch.Generator) -> int:
    """Pick this request's next token: forced ones directly, others sampled among the allowed."""
    allowed = job.constraint.allowed(logits)
    if allowed is None:
        masked = logits.masked_fill(job.constraint.free_ban().to(logits.device), NEG_INF)
        return sample(masked, job.temperature, job.top_p, gen)
    if len(allowed) == 1:
        return int(allowed[0])
    allowed = allowed.to(logits.device)
    return int(allowed[sample(logits[allowed], job.temperature, job.top_p, gen)])


def _left_pad(rows: list[list[int]], pad: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def decode(
    model: torch.nn.Module,
    jobs: list[DecodeJob],
    pad_id: int,
    device: str = "cpu",
    on_step: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """Decode every job to completion in one loop.

    Args:
        model: A causal LM returning ``logits`` and ``past_key_values``.
        jobs: The requests (their constraints are advanced in place).
        pad_id: Token used for left padding and for finished rows.
        device: Where the model lives.
        on_step: Called with the step number after each step.

    Returns:
        The generated token ids of each job, in order.
    """
    rows: list[list[int]] = []
    slots: list[tuple[int, int | None]] = []  # (cond row, uncond row) per job
    owner: list[int] = []  # job index of each row
    for j, job in enumerate(jobs):
        cond = len(rows)
        rows.append(job.prompt)
        owner.append(j)
        uncond = None
        if job.guided:
            uncond = len(rows)
            rows.append(list(job.uncond_prompt or []))
            owner.append(j)
        slots.append((cond, uncond))
    gens = [torch.Generator(device=device).manual_seed(job.seed) for job in jobs]
    ids, mask = _left_pad(rows, pad_id, device)
    live = torch.arange(len(rows), device=device)  # original row index of each cache row
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
        use_cache=True,
        logits_to_keep=1,
    )
    cache, logits = out.past_key_values, out.logits[:, -1].float()
    active = [True] * len(jobs)
    step = 0
    while any(active):
        where = {int(r): i for i, r in enumerate(live.tolist())}
        next_tokens = torch.full((len(rows),), pad_id, dtype=torch.long)
        for j, job in enumerate(jobs):
            if not active[j]:
                continue
            cond_row, uncond_row = slots[j]
            combined = logits[where[cond_row]]
            if uncond_row is not None:
                uncond = logits[where[uncond_row]]
                combined = uncond + job.cfg_scale * (combined - uncond)
            token = _choose(job, combined, gens[j])
            job.constraint.advance(token)
            job.tokens.append(token)
            next_tokens[cond_row] = token
            if uncond_row is not None:
                next_tokens[uncond_row] = token
            if job.constraint.done or len(job.tokens) >= job.max_new_tokens:
                active[j] = False
        step += 1
        if on_step is not None:
            on_step(step)
        if not any(active):
            break
        keep = torch.tensor([i for i, r in enumerate(live.tolist()) if active[owner[r]]], device=device)
        if len(keep) < len(live):
            # Finished requests leave the batch so that the rest decode at full speed.
            cache.batch_select_indices(keep)
            live, mask = live[keep], mask[keep]
        mask = torch.cat([mask, torch.ones((len(live), 1), dtype=mask.dtype, device=device)], dim=1)
        out = model(
            input_ids=next_tokens.to(device)[live][:, None],
            attention_mask=mask,
            position_ids=(mask.sum(-1, keepdim=True) - 1),
            past_key_values=cache,
            use_cache=True,
        )
        cache, logits = out.past_key_values, out.logits[:, -1].float()
    return [job.tokens for job in jobs]
