"""The per-row device state of a fast-path decoder: buffers in row buckets and length steps, joins, leaves.

A :class:`~engine.acestep.lm.fast.FastDecoder` keeps every request's state in rows of device
buffers (the KV cache, the next step's inputs, the sampling settings, the outputs), so that a
step is one fixed-shape function over the first ``b`` rows. This module owns those rows:
(re)allocating them in power-of-two buckets and 256-position length steps (keeping contents), a
request's join (prefill and settings) and leave, and compaction (the highest rows move down
into free ones, so the bucket shrinks with the batch). The step functions and the loop that
drives them stay in ``fast.py``.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.acestep.lm.constraints import Vocab
from engine.acestep.lm.decode import DecodeJob
from engine.acestep.lm.graphs import StepGraphs, bucket
from engine.acestep.lm.qwen3 import FastLM
from engine.acestep.lm.sampling import row_keys
from engine.acestep.lm.tickets import Ticket
from engine.acestep.lm.tokenizer import VALID_CODES

# Moved with a request when rows are compacted (besides the KV cache).
ROW_TENSORS = (
    "tok",
    "pos",
    "count",
    "seed",
    "noise_phase",
    "noise_keys",
    "temp",
    "top_p",
    "scale",
    "guided",
    "live",
    "target",
    "last",
    "out",
)


class RowBuffers:
    """The rows of one decoder (see the module docstring); :class:`FastDecoder` builds on it.

    Args:
        lm: The model (its cache layout and prefill).
        vocab: The token tables.
        phase: ``codes`` or ``meta``.
        halves: 2 with guidance (a conditional and an unconditional half per row), else 1.
        max_rows: The largest row bucket.
        len_step: Lengths grow in steps of this many positions.
        graphs: The step graphs, forgotten whenever the buffers they point at are replaced.
    """

    # Per-row device buffers, (re)made by _allocate: the cache, the inputs of the next step and the outputs.
    keys: torch.Tensor
    values: torch.Tensor
    tok: torch.Tensor
    pos: torch.Tensor
    count: torch.Tensor
    seed: torch.Tensor
    noise_phase: torch.Tensor
    noise_keys: torch.Tensor
    row_ids: torch.Tensor
    temp: torch.Tensor
    top_p: torch.Tensor
    scale: torch.Tensor
    guided: torch.Tensor
    live: torch.Tensor
    target: torch.Tensor
    last: torch.Tensor
    out: torch.Tensor
    logits: torch.Tensor
    rules: torch.Tensor
    rules_host: torch.Tensor
    last_host: torch.Tensor
    rules_np: Any
    last_np: Any

    def __init__(
        self, lm: FastLM, vocab: Vocab, phase: str, halves: int, max_rows: int, len_step: int, graphs: StepGraphs
    ) -> None:
        self.lm, self.vocab, self.phase, self.halves = lm, vocab, phase, halves
        self.max_rows, self.len_step, self.graphs = max_rows, len_step, graphs
        self.device = lm.device
        self.rows: list[Ticket | None] = []
        self.rows_cap = 0
        self.length = 0
        self.width = VALID_CODES if phase == "codes" else vocab.size
        self.k_ids = vocab.max_choices()
        self._pinned = torch.cuda.is_available() and self.device.type == "cuda"

    def _need_length(self, job: DecodeJob) -> int:
        longest = max(len(job.prompt), len(job.uncond_prompt or []))
        new = self._end(job) if self.phase == "codes" else job.max_new_tokens
        return longest + new + 2

    def _end(self, job: DecodeJob) -> int:
        return min((job.constraint.spec.target_codes or 0) + 1, job.max_new_tokens)

    def _allocate(self, rows: int, length: int) -> None:
        """(Re)allocate every per-row buffer for ``rows`` rows and ``length`` positions, keeping contents."""
        length = -(-length // self.len_step) * self.len_step
        old = self.__dict__.get("keys")
        dev, c, h = self.device, rows, self.halves
        keys, values = self.lm.new_cache(c, h, length)
        if old is not None:
            r, n = self.rows_cap, self.length
            keys[:, :r, :, :, :n] = self.keys
            values[:, :r, :, :, :n] = self.values
        self.keys, self.values = keys, values

        def grow(name: str, shape: tuple[int, ...], dtype: torch.dtype, fill: float = 0) -> None:
            new = torch.full(shape, fill, dtype=dtype, device=dev)
            if old is not None:
                prev = getattr(self, name)
                new[tuple(slice(0, s) for s in prev.shape)] = prev
            setattr(self, name, new)

        grow("tok", (c, h), torch.long, self.vocab.pad)
        grow("pos", (c, h), torch.long)
        grow("count", (c,), torch.long)
        grow("seed", (c,), torch.long)
        grow("noise_phase", (c,), torch.long)
        grow("temp", (c,), torch.float32)
        grow("top_p", (c,), torch.float32, 1.0)
        grow("scale", (c,), torch.float32, 1.0)
        grow("guided", (c,), torch.bool)
        grow("live", (c,), torch.bool)
        grow("target", (c,), torch.long)
        grow("last", (c,), torch.long)
        grow("out", (c, length), torch.long)
        # Each row's noise key per step (a pure function of seed, phase and step, sampling.row_keys),
        # made once here and at a join: a step reads its key instead of hashing it (~40 kernels).
        self.noise_keys = row_keys(self.seed[:, None], self.noise_phase[:, None], torch.arange(length, device=dev))
        self.row_ids = torch.arange(c, device=dev)
        grow("logits", (c, self.width), torch.float32)
        # Metadata-phase rules, uploaded together each step: mode, token, bank index, live, ids...
        grow("rules", (c, 4 + self.k_ids), torch.long)
        self.rules_host = torch.zeros((c, 4 + self.k_ids), dtype=torch.long, pin_memory=self._pinned)
        self.last_host = torch.zeros((c,), dtype=torch.long, pin_memory=self._pinned)
        self.rules_np, self.last_np = self.rules_host.numpy(), self.last_host.numpy()  # cheap element access
        self.rows += [None] * (c - len(self.rows))
        self.rows_cap, self.length = c, length
        self.graphs.clear()

    def _fit(self, ticket: Ticket) -> bool:
        """Make room for one more request; False when the row limit is reached."""
        live = sum(t is not None for t in self.rows)
        if live >= self.max_rows:
            return False
        need = self._need_length(ticket.job)
        if self.rows_cap <= live or self.length < need:
            self._allocate(max(self.rows_cap, bucket(live + 1, self.max_rows)), max(self.length, need))
        return True

    # ---- membership ------------------------------------------------------------------------

    def _join(self, ticket: Ticket) -> None:
        row = self.rows.index(None)
        self.rows[row] = ticket
        ticket.row = row
        job = ticket.job
        prompts = [job.prompt, job.uncond_prompt if job.guided and job.uncond_prompt else job.prompt][: self.halves]
        last, pos = [], []
        for half, prompt in enumerate(prompts):
            ids = torch.tensor(prompt, dtype=torch.long, device=self.device)
            self.lm.prefill(ids[:-1], self.keys, self.values, row, half)
            last.append(prompt[-1])
            pos.append(len(prompt) - 1)
        ticket.pos = (pos[0], pos[-1])
        self.tok[row] = torch.tensor(last, device=self.device)
        self.pos[row] = torch.tensor(pos, device=self.device)
        ints = torch.tensor(
            [0, job.seed & 0xFFFFFFFF, job.phase, job.constraint.spec.target_codes or 0, 1, int(job.guided)],
            device=self.device,
        )
        self.count[row], self.seed[row], self.noise_phase[row], self.target[row] = ints[0], ints[1], ints[2], ints[3]
        self.live[row], self.guided[row] = ints[4].bool(), ints[5].bool()
        floats = torch.tensor(
            [job.temperature, 1.0 if job.top_p is None else job.top_p, job.cfg_scale], device=self.device
        )
        self.temp[row], self.top_p[row], self.scale[row] = floats[0], floats[1], floats[2]
        steps = torch.arange(self.length, device=self.device)
        self.noise_keys[row] = row_keys(self.seed[row], self.noise_phase[row], steps)

    def _leave(self, ticket: Ticket) -> None:
        row = ticket.row
        self.rows[row] = None
        self.live[row] = False
        self.pos[row] = 0
        self.count[row] = 0
        ticket.done.set()

    def _compact(self) -> None:
        """Move the highest rows down into free rows, so that the bucket shrinks with the batch."""
        while True:
            used = [i for i, t in enumerate(self.rows) if t is not None]
            free = [i for i, t in enumerate(self.rows) if t is None]
            if not used or not free or free[0] > used[-1]:
                return
            src, dst = used[-1], free[0]
            if bucket(len(used), self.max_rows) > src:
                return  # moving would not shrink the bucket
            for buf in (self.keys, self.values):
                buf[:, dst] = buf[:, src]
            for name in ROW_TENSORS:
                tensor = getattr(self, name)
                tensor[dst] = tensor[src]
            ticket = self.rows[src]
            assert ticket is not None
            self.rows[dst], self.rows[src], ticket.row = ticket, None, dst
            self.live[src] = False
