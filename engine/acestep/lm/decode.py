"""Batched, constrained, seeded decoding with a KV cache and classifier-free guidance.

Several requests share one decode loop. Each request has one conditional row and, with
guidance, one unconditional row; per step its logits are combined as
``uncond + scale * (cond - uncond)``, masked by the request's own :class:`Constraint`, cut to
the top-p nucleus, divided by the temperature and sampled, and the token is fed to both rows.

Sampling is Gumbel-max with counter-based noise (:mod:`engine.acestep.lm.sampling`):
argmax(logits/T + G) draws exactly from softmax(logits/T), and ``G`` is a pure function of
(seed, phase, token index, token id). A result only changes when the two best perturbed scores
are within rounding noise of each other. That makes a request's tokens independent of which
other requests share its batch (whose padding changes the floating-point reduction order), not
only of its own seed.

This loop is the reference: simple, host-driven, on the ``transformers`` model. The fast path
(:mod:`engine.acestep.lm.fast`) gives the same tokens for the same seed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.acestep.lm.constraints import Constraint
from engine.acestep.lm.sampling import gumbel, row_keys

NEG_INF = float("-inf")


@dataclass
class DecodeJob:
    """One request in a decode loop.

    Args:
        prompt: Prompt token ids (conditional row).
        constraint: This request's own constraint state.
        seed: Sampling seed (uint32).
        phase: Noise stream: 0 for the metadata phase, 1 for the code phase.
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
    phase: int = 0
    tokens: list[int] = field(default_factory=list)

    @property
    def guided(self) -> bool:
        """Whether this request decodes an unconditional row too."""
        return self.uncond_prompt is not None and self.cfg_scale > 1.0


def top_p_rows(logits: torch.Tensor, top_p: torch.Tensor, head: int = 256) -> torch.Tensor:
    """Per row, keep the smallest set of most likely tokens whose mass reaches ``top_p``.

    The first token is always kept; ``top_p >= 1`` keeps everything. A trained LM's nucleus is
    usually a few tokens, so the ``head`` best are tried first; a row whose head falls short
    of ``top_p`` is fully sorted. Each row's path depends only on that row, so a request's
    result does not depend on its batch.
    """
    probs = torch.softmax(logits, dim=-1)
    k = min(head, probs.shape[-1])
    top, order = torch.topk(probs, k, dim=-1)
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep.scatter_(-1, order, (top.cumsum(-1) - top) <= top_p[:, None])
    full = (top.sum(-1) < top_p) & (top_p < 1.0)
    if k < probs.shape[-1] and bool(full.any()):
        rows = full.nonzero().squeeze(-1)
        top, order = torch.sort(probs[rows], descending=True, dim=-1)
        keep[rows] = torch.zeros_like(top, dtype=torch.bool).scatter_(
            -1, order, (top.cumsum(-1) - top) <= top_p[rows, None]
        )
    keep |= (top_p >= 1.0)[:, None]
    return logits.masked_fill(~keep, NEG_INF)


def top_p_filter(logits: torch.Tensor, top_p: float | None, head: int = 256) -> torch.Tensor:
    """:func:`top_p_rows` for one row (``None`` keeps everything)."""
    p = torch.tensor([1.0 if top_p is None else top_p], device=logits.device)
    return top_p_rows(logits[None], p, head)[0]


def sample_rows(
    logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, keys: torch.Tensor
) -> torch.Tensor:
    """Sample one token per row of masked float32 logits (top-p, then temperature, as upstream).

    Gumbel-max: ``argmax(logits / T + G)`` with ``G`` the counter noise of each row's key
    (:func:`engine.acestep.lm.sampling.row_keys`) over every token id.
    """
    filtered = top_p_rows(logits, top_p)
    ids = torch.arange(logits.shape[-1], device=logits.device)
    hot = temperature > 0
    noise = gumbel(keys, ids)
    scores = torch.where(hot[:, None], filtered / temperature.clamp(min=1e-6)[:, None] + noise, filtered)
    return scores.argmax(-1)


def sample(
    logits: torch.Tensor, temperature: float, top_p: float | None, seed: int, step: int = 0, phase: int = 0
) -> int:
    """:func:`sample_rows` for one row, with the noise of (seed, phase, step)."""
    device = logits.device
    t = torch.tensor([temperature], device=device)
    p = torch.tensor([1.0 if top_p is None else top_p], device=device)
    keys = row_keys(*(torch.tensor([v], device=device) for v in (seed, phase, step)))
    return int(sample_rows(logits[None], t, p, keys)[0])


def _allowed_mask(job: DecodeJob, row: torch.Tensor, cache: dict[int, torch.Tensor]) -> torch.Tensor | int:
    """This request's allowed-token mask for the step, or the forced token itself."""
    constraint = job.constraint
    allowed = constraint.allowed(row)
    if allowed is None:
        return ~constraint.free_ban().to(row.device)
    if len(allowed) == 1:
        return int(allowed[0])
    key = id(allowed)
    if key not in cache:  # the code-id set is one shared tensor: build its mask once per loop
        mask = torch.zeros(row.shape[-1], dtype=torch.bool, device=row.device)
        mask[allowed.to(row.device)] = True
        if allowed is constraint.vocab.code_ids:
            cache[key] = mask
        return mask
    return cache[key]


def _step(
    jobs: list[DecodeJob],
    todo: list[int],
    rows: list[tuple[int, int | None]],
    logits: torch.Tensor,
    masks: dict[int, torch.Tensor],
) -> list[int]:
    """One token for each job in ``todo``: guidance, constraint, top-p, temperature, sampling.

    Args:
        jobs: All requests of the loop.
        todo: Indices of the requests still decoding.
        rows: Per job in ``todo``, its (cond, uncond) row in ``logits``.
        logits: The last position's logits of every live row, float32.
        masks: Allowed-token masks reused across steps (the code-id set).

    Returns:
        The token of each job in ``todo``.
    """
    device = logits.device
    combined = logits[torch.tensor([c for c, _ in rows], device=device)]
    guided = [k for k, (_, u) in enumerate(rows) if u is not None]
    if guided:
        g = torch.tensor(guided, device=device)
        uncond = logits[torch.tensor([rows[k][1] for k in guided], device=device)]
        scale = torch.tensor([jobs[todo[k]].cfg_scale for k in guided], device=device)[:, None]
        combined[g] = uncond + scale * (combined[g] - uncond)
    tokens: list[int] = [0] * len(todo)
    sampled: list[int] = []
    allow: list[torch.Tensor] = []
    for k, j in enumerate(todo):
        choice = _allowed_mask(jobs[j], combined[k], masks)
        if isinstance(choice, int):
            tokens[k] = choice
        else:
            sampled.append(k)
            allow.append(choice)
    if sampled:
        picked = [jobs[todo[k]] for k in sampled]
        masked = combined[torch.tensor(sampled, device=device)].masked_fill(~torch.stack(allow), NEG_INF)
        temps = torch.tensor([job.temperature for job in picked], device=device)
        top_p = torch.tensor([1.0 if job.top_p is None else job.top_p for job in picked], device=device)
        keys = row_keys(
            torch.tensor([job.seed for job in picked], device=device),
            torch.tensor([job.phase for job in picked], device=device),
            torch.tensor([len(job.tokens) for job in picked], device=device),
        )
        chosen = sample_rows(masked, temps, top_p, keys).tolist()
        for k, token in zip(sampled, chosen, strict=True):
            tokens[k] = int(token)
    return tokens


def _row(where: dict[int, int], row: int | None) -> int | None:
    return None if row is None else where[row]


def _left_pad(rows: list[list[int]], pad: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def _cache_keyword(model: torch.nn.Module) -> str:
    """The cache argument's name: ``cache`` in transformers 5.x, ``past_key_values`` in 4.5x."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values  # type: ignore[attr-defined]


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
    ids, mask = _left_pad(rows, pad_id, device)
    live = torch.arange(len(rows), device=device)  # original row index of each cache row
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
        use_cache=True,
        logits_to_keep=1,
    )
    cache_kw = _cache_keyword(model)
    cache, logits = _cache_of(out), out.logits[:, -1].float()
    active = [True] * len(jobs)
    code_masks: dict[int, torch.Tensor] = {}
    step = 0
    while any(active):
        where = {int(r): i for i, r in enumerate(live.tolist())}
        todo = [j for j in range(len(jobs)) if active[j]]
        rows_now = [(where[slots[j][0]], _row(where, slots[j][1])) for j in todo]
        next_tokens = torch.full((len(rows),), pad_id, dtype=torch.long)
        for j, token in zip(todo, _step(jobs, todo, rows_now, logits, code_masks), strict=True):
            job = jobs[j]
            job.constraint.advance(token)
            job.tokens.append(token)
            for row in slots[j]:
                if row is not None:
                    next_tokens[row] = token
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
            use_cache=True,
            **{cache_kw: cache},
        )
        cache, logits = _cache_of(out), out.logits[:, -1].float()
    return [job.tokens for job in jobs]
