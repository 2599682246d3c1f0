"""The fast path of one model: a :class:`FastDecoder` per (phase, guidance), created on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable

from engine.acestep.lm.constraints import Vocab
from engine.acestep.lm.decode import DecodeJob
from engine.acestep.lm.fast import FastDecoder
from engine.acestep.lm.qwen3 import FastLM


class FastEngine:
    """The fast path of one model: a decoder per (phase, guidance), created on first use."""

    def __init__(
        self, lm: FastLM, vocab: Vocab, max_rows: int = 64, graphs: bool | None = None, len_step: int = 256
    ) -> None:
        self.lm, self.vocab = lm, vocab
        self.max_rows, self.use_graphs, self.len_step = max_rows, graphs, len_step
        self.decoders: dict[tuple[str, bool], FastDecoder] = {}
        self.lock = threading.Lock()

    def decoder(self, phase: str, guided: bool) -> FastDecoder:
        """The decoder of one phase and guidance setting."""
        with self.lock:
            key = (phase, guided)
            if key not in self.decoders:
                dec = FastDecoder(self.lm, self.vocab, phase, guided, self.max_rows, self.use_graphs, self.len_step)
                dec.graphs.on_failure = self._graphs_failed
                self.decoders[key] = dec
            return self.decoders[key]

    def _graphs_failed(self) -> None:
        """A capture failed (StepGraphs logged why): every decoder, present and future, runs eagerly."""
        self.use_graphs = False
        for dec in list(self.decoders.values()):
            dec.graphs.enabled = False

    def release(self) -> None:
        """Free every idle decoder's cache and graphs (e.g. between jobs, to lend the GPU memory to the DiT)."""
        for dec in list(self.decoders.values()):
            dec.release()

    def decode(
        self, jobs: list[DecodeJob], phase: str, on_step: Callable[[int], None] | None = None
    ) -> list[list[int]]:
        """Decode ``jobs`` of one phase (``meta`` or ``codes``); guided and unguided ones apart."""
        placed = [(self.decoder(phase, job.guided), job) for job in jobs]
        tickets = [(dec, dec.submit(job)) for dec, job in placed]
        for dec in {id(d): d for d, _ in tickets}.values():
            dec.wait([t for d, t in tickets if d is dec], on_step)
        return [job.tokens for job in jobs]
