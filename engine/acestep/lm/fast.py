"""The fast decode path: static KV cache in row buckets, one fixed-shape step, CUDA graphs.

A :class:`FastDecoder` decodes the requests of one planner phase with continuous batching:
requests join at the next step (:meth:`FastDecoder.submit` may be called from any thread while
another drives the loop) and leave when they finish. Each step is two fixed-shape tensor
functions over the first ``b`` cache rows (``b`` a power of two covering the live rows):

- ``forward``: the model step (:meth:`FastLM.decode`), the head and guidance
  ``uncond + scale * (cond - uncond)`` for the doubled batch (each request has a conditional
  and an unconditional half);
- ``select``: the token of every row. Code phase: only the 64,000 code rows of the head are
  computed (exact: every other token is masked anyway) and end-of-sequence is forced on the
  device at ``5 x duration``. Metadata phase: the constraint arrives as a :class:`Rule` per row
  (mode, forced token, a ban-mask index into a bank kept on the device, or a short id list).
  Then top-p by threshold, temperature and counter-noise Gumbel-max (:mod:`sampling`), and the
  bookkeeping of positions, counts and outputs.

Neither function reads anything back to the host, so on CUDA each is captured once per
(bucket, attention window) as a CUDA graph and replayed. The code phase never waits for the
host except when a request finishes (its length is known in advance) or joins. The metadata
phase reads each step's tokens one step behind: the next forward is launched first, so the
host advances the state machines while the GPU runs it.

On the CPU the same functions run eagerly: the tests prove there that they give the same
tokens as the reference loop (:mod:`engine.acestep.lm.decode`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch

from engine.acestep.lm.constraints import DECIDE, FORCED, SAMPLE_IDS, TOP1_IDS, Vocab
from engine.acestep.lm.decode import DecodeJob
from engine.acestep.lm.graphs import StepGraphs, bucket
from engine.acestep.lm.qwen3 import FastLM
from engine.acestep.lm.sampling import pick, row_keys, token_salts
from engine.acestep.lm.tickets import Ticket, fill_rules, take_codes, take_tokens
from engine.acestep.lm.tokenizer import VALID_CODES

NEG_INF = float("-inf")


class FastDecoder:
    """Continuous-batching decoder for one phase (``meta`` or ``codes``) on the fast path.

    Args:
        lm: The model (:class:`FastLM`).
        vocab: The token tables.
        phase: ``codes`` (code-only head, no host sync per step) or ``meta`` (every rule).
        guided: Two halves per row (conditional, unconditional); unguided jobs may join too.
        max_rows: The largest row bucket.
        graphs: Capture CUDA graphs (None: when the model is on CUDA).
        len_step: The attention window grows in steps of this many positions.
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
        self,
        lm: FastLM,
        vocab: Vocab,
        phase: str,
        guided: bool,
        max_rows: int = 64,
        graphs: bool | None = None,
        len_step: int = 256,
    ) -> None:
        assert phase in ("meta", "codes")
        self.lm, self.vocab, self.phase = lm, vocab, phase
        self.halves = 2 if guided else 1
        self.max_rows = max_rows
        self.len_step = len_step
        self.device = lm.device
        cuda = self.device.type == "cuda"
        self.graphs = StepGraphs(cuda if graphs is None else graphs and cuda)
        self.lock = threading.Lock()
        self.pending: list[Ticket] = []
        self.driving = False
        self.rows: list[Ticket | None] = []
        self.rows_cap = 0
        self.length = 0
        self.width = VALID_CODES if phase == "codes" else vocab.size
        self.head_start = vocab.code0 if phase == "codes" else 0
        self.salts = token_salts(torch.arange(self.head_start, self.head_start + self.width, device=self.device))
        self.k_ids = vocab.max_choices()
        self.bank_keys = {key: i for i, key in enumerate(Vocab.BAN_KEYS)}
        self.bank = ~torch.stack([vocab.ban_mask(k) for k in Vocab.BAN_KEYS]).to(self.device)
        self.continues = vocab.continues.to(self.device)
        self._pinned = torch.cuda.is_available() and cuda

    # ---- public API ------------------------------------------------------------------------

    def submit(self, job: DecodeJob) -> Ticket:
        """Queue a job; it joins the running loop at its next step (thread-safe)."""
        if self.phase == "codes" and job.constraint.spec.target_codes is None:
            raise ValueError("the code phase needs a target code count")
        ticket = Ticket(job)
        with self.lock:
            self.pending.append(ticket)
        return ticket

    def decode(self, jobs: list[DecodeJob], on_step: Callable[[int], None] | None = None) -> list[list[int]]:
        """Decode ``jobs`` (joined by whatever else is submitted meanwhile); return their tokens."""
        tickets = [self.submit(job) for job in jobs]
        self.wait(tickets, on_step)
        return [t.job.tokens for t in tickets]

    def wait(self, tickets: list[Ticket], on_step: Callable[[int], None] | None = None) -> None:
        """Drive the loop (or let the thread already driving it work) until ``tickets`` are done."""
        while not all(t.done.is_set() for t in tickets):
            with self.lock:
                drive = not self.driving
                self.driving = self.driving or drive
            if drive:
                try:
                    self._drive(on_step)
                finally:
                    with self.lock:
                        self.driving = False
            else:
                for t in tickets:
                    t.done.wait(0.01)
        for t in tickets:
            if t.error is not None:
                raise t.error

    def release(self) -> bool:
        """Free the cache and the graphs when nothing is decoding (they are rebuilt on the next use).

        Returns whether anything was freed.
        """
        with self.lock:
            if self.driving or self.pending or any(t is not None for t in self.rows) or not self.rows_cap:
                return False
            for name in ("keys", "values", "out", "logits", "rules", "rules_host", "last_host", "rules_np", "last_np"):
                self.__dict__.pop(name, None)
            self.rows, self.rows_cap, self.length = [], 0, 0
            self.graphs.clear()
            self.graphs.pool = None
            return True

    # ---- buffers ---------------------------------------------------------------------------

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
            for name in (
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
            ):
                tensor = getattr(self, name)
                tensor[dst] = tensor[src]
            ticket = self.rows[src]
            assert ticket is not None
            self.rows[dst], self.rows[src], ticket.row = ticket, None, dst
            self.live[src] = False

    def _admit(self) -> None:
        with self.lock:
            while self.pending and self._fit(self.pending[0]):
                self._join(self.pending.pop(0))

    # ---- the step functions (fixed shapes, no host reads) -------------------------------------

    def _forward(self, b: int, window: int) -> None:
        hidden = self.lm.decode(self.tok[:b], self.pos[:b], self.keys, self.values, window)
        logits = self.lm.logits(hidden, self.head_start, self.head_start + self.width)  # [b, halves, width]
        if self.halves == 2:
            cond, uncond = logits[:, 0], logits[:, 1]
            combined = uncond + self.scale[:b, None] * (cond - uncond)
            self.logits[:b] = torch.where(self.guided[:b, None], combined, cond)
        else:
            self.logits[:b] = logits[:, 0]

    def _select_codes(self, b: int) -> None:
        rows, at = self.row_ids[:b], self.count[:b].clamp(max=self.length - 1)
        index = pick(self.logits[:b], self.noise_keys[rows, at], self.salts, self.temp[:b], self.top_p[:b])
        token = (index + self.head_start).masked_fill_(self.count[:b] >= self.target[:b], self.vocab.eos)
        self._commit(b, token, self.live[:b], at)

    def _select_meta(self, b: int) -> None:
        rules = self.rules[:b]
        mode, forced, bank, live, ids = rules[:, 0], rules[:, 1], rules[:, 2], rules[:, 3].bool(), rules[:, 4:]
        listed = torch.zeros((b, self.width), dtype=torch.bool, device=self.device)
        listed.scatter_(1, ids.clamp(min=0), ids >= 0)
        by_list = (mode == SAMPLE_IDS) | (mode == TOP1_IDS)
        allowed = torch.where(by_list[:, None], listed, self.bank[bank])
        masked = self.logits[:b].masked_fill(~allowed, NEG_INF)
        top = masked.argmax(-1)
        decided = torch.where(self.continues[top] | (mode == TOP1_IDS), top, forced)
        at = self.count[:b].clamp(max=self.length - 1)
        sampled = pick(masked, self.noise_keys[self.row_ids[:b], at], self.salts, self.temp[:b], self.top_p[:b])
        greedy = (mode == TOP1_IDS) | (mode == DECIDE)
        token = torch.where(mode == FORCED, forced, torch.where(greedy, decided, sampled))
        self._commit(b, token, live & self.live[:b], at)

    def _commit(self, b: int, token: torch.Tensor, live: torch.Tensor, at: torch.Tensor) -> None:
        """Store each live row's token at its ``at`` (its count) and advance it; other rows stand still.

        A row that is not live writes padding at its next slot, which it overwrites before
        anything reads it (outputs are read up to the count).
        """
        kept = token.masked_fill(~live, self.vocab.pad)
        self.out[self.row_ids[:b], at] = kept
        self.last[:b] = kept
        self.tok[:b] = kept[:, None]
        self.pos[:b] += live[:, None]
        self.count[:b] += live
        torch.logical_and(live, token != self.vocab.eos, out=self.live[:b])

    def _save(self) -> object:
        return [getattr(self, n).clone() for n in ("tok", "pos", "count", "live", "last")]

    def _restore(self, state: object) -> None:
        for name, value in zip(("tok", "pos", "count", "live", "last"), state, strict=True):  # type: ignore[call-overload]
            getattr(self, name).copy_(value)

    # ---- driving ---------------------------------------------------------------------------

    def _bucket(self) -> int:
        used = [i for i, t in enumerate(self.rows) if t is not None]
        return bucket(used[-1] + 1, self.max_rows) if used else 0

    def _window(self, b: int) -> int:
        top = max(max(t.pos) for t in self.rows[:b] if t is not None) + 1
        return min(-(-top // self.len_step) * self.len_step, self.length)

    def _launch_forward(self, b: int) -> None:
        window = self._window(b)
        self.graphs.run(("forward", b, window), lambda: self._forward(b, window))

    def _launch_select(self, b: int) -> None:
        fn = self._select_codes if self.phase == "codes" else self._select_meta
        self.graphs.run(("select", b), lambda: fn(b), self._save, self._restore)
        for t in self.rows[:b]:
            if t is not None and not t.finished:
                t.count += 1
                t.pos = (t.pos[0] + 1, t.pos[1] + 1)

    def _drive(self, on_step: Callable[[int], None] | None) -> None:
        try:
            if self.phase == "codes":
                self._drive_codes(on_step)
            else:
                self._drive_meta(on_step)
        except BaseException as exc:
            for t in [*self.rows, *self.pending]:
                if t is not None:
                    t.error = exc
                    t.done.set()
            self.rows = [None] * len(self.rows)
            self.pending.clear()
            if self.rows_cap:
                self.live.zero_()
            raise

    def _drive_codes(self, on_step: Callable[[int], None] | None) -> None:
        step = 0
        while True:
            self._finish_codes()
            self._admit()
            b = self._bucket()
            if b == 0:
                return
            todo = min(t.end - t.count for t in self.rows if t is not None)
            for _ in range(todo):
                self._launch_forward(b)
                self._launch_select(b)
                step += 1
                if on_step is not None:
                    on_step(step)
                if self.pending:
                    break  # a new request joins at the next step

    def _finish_codes(self) -> None:
        done = [t for t in self.rows if t is not None and t.count >= t.end]
        if not done:
            return
        out = self.out[torch.tensor([t.row for t in done], device=self.device)].tolist()
        for t, tokens in zip(done, out, strict=True):
            take_codes(t, tokens)
            self._leave(t)
        self._compact()

    def _drive_meta(self, on_step: Callable[[int], None] | None) -> None:
        step, prev = 0, None
        while True:
            room = sum(t is not None for t in self.rows) < self.max_rows
            change = bool(self.pending and room) or any(t is not None and t.finished for t in self.rows)
            if change or prev is None:
                if prev is not None:
                    self._read(prev)
                prev = None
                for t in self.rows:
                    if t is not None and t.finished:
                        self._leave(t)
                self._compact()
                self._admit()
                b = self._bucket()
                if b == 0:
                    return
                self._launch_forward(b)
            else:
                self._launch_forward(b)
                self._read(prev)  # the host's work overlaps the forward just launched
            self._upload_rules(b)
            self._launch_select(b)
            self.last_host[:b].copy_(self.last[:b], non_blocking=self._pinned)
            event = torch.cuda.Event() if self._pinned else None
            if event is not None:
                event.record()
            prev = (event, [(t, t.rule) for t in self.rows[:b] if t is not None and t.rule is not None])
            step += 1
            if on_step is not None:
                on_step(step)

    def _upload_rules(self, b: int) -> None:
        fill_rules(self.rules_np, self.rows, b, self.vocab.pad, self.bank_keys)
        self.rules[:b].copy_(self.rules_host[:b], non_blocking=self._pinned)

    def _read(self, prev: tuple) -> None:
        event, taken = prev
        if event is not None:
            event.synchronize()
        take_tokens(taken, self.last_np)
