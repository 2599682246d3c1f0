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

import torch

from engine.acestep.lm.constraints import DECIDE, FORCED, SAMPLE_IDS, TOP1_IDS, Vocab
from engine.acestep.lm.decode import DecodeJob
from engine.acestep.lm.graphs import StepGraphs, bucket
from engine.acestep.lm.qwen3 import FastLM
from engine.acestep.lm.rows import RowBuffers
from engine.acestep.lm.sampling import pick, token_salts
from engine.acestep.lm.tickets import Ticket, fill_rules, take_codes, take_tokens

NEG_INF = float("-inf")


class FastDecoder(RowBuffers):
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
        cuda = lm.device.type == "cuda"
        steps = StepGraphs(cuda if graphs is None else graphs and cuda)
        super().__init__(lm, vocab, phase, 2 if guided else 1, max_rows, len_step, steps)
        self.lock = threading.Lock()
        self.pending: list[Ticket] = []
        self.driving = False
        self.head_start = vocab.code0 if phase == "codes" else 0
        self.salts = token_salts(torch.arange(self.head_start, self.head_start + self.width, device=self.device))
        self.bank_keys = {key: i for i, key in enumerate(Vocab.BAN_KEYS)}
        self.bank = ~torch.stack([vocab.ban_mask(k) for k in Vocab.BAN_KEYS]).to(self.device)
        self.continues = vocab.continues.to(self.device)

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
