"""Step functions run eagerly, or captured once per key as CUDA graphs and replayed (the fast path's steps).

:func:`bucket` sizes the row buckets that, with the attention window, key the graphs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch

# Held while a step graph is captured or replayed: decoders driven from different threads never
# launch into a stream while another captures (capture runs in thread-local error mode).
_CUDA_GRAPHS = threading.RLock()


def bucket(n: int, most: int) -> int:
    """The smallest power of two >= n (at least 1, at most ``most``)."""
    b = 1
    while b < n:
        b *= 2
    return min(b, most)


class StepGraphs:
    """Runs step functions eagerly, or as CUDA graphs captured on first use per key.

    A step function may update state in place; before capture it is run once for warm-up, so
    the caller passes ``save`` and ``restore`` to undo that warm-up's updates.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.graphs: dict[tuple, torch.cuda.CUDAGraph] = {}
        self.pool: Any = None
        # When a list (and on CUDA): (start, end) timing events around each run, for the GPU's busy share.
        self.events: list[tuple[torch.cuda.Event, torch.cuda.Event]] | None = None

    def run(
        self,
        key: tuple,
        fn: Callable[[], None],
        save: Callable[[], object] | None = None,
        restore: Callable[[object], None] | None = None,
    ) -> None:
        """Run ``fn`` (replaying its graph when there is one)."""
        if not self.enabled:
            fn()
            return
        with _CUDA_GRAPHS:
            graph = self.graphs.get(key)
            if graph is None:
                graph = self._capture(fn, save, restore)
                self.graphs[key] = graph
            if self.events is None:
                graph.replay()
                return
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            graph.replay()
            end.record()
            self.events.append((start, end))

    def busy_ms(self) -> float:
        """GPU time inside the timed runs (call after a synchronize), and forget the events."""
        total = sum(start.elapsed_time(end) for start, end in self.events or [])
        self.events = [] if self.events is not None else None
        return total

    def _capture(
        self, fn: Callable[[], None], save: Callable[[], object] | None, restore: Callable[[object], None] | None
    ) -> torch.cuda.CUDAGraph:
        state = save() if save else None
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # warm-up (kernel selection, workspaces)
        torch.cuda.current_stream().wait_stream(side)
        if restore:
            restore(state)
        graph = torch.cuda.CUDAGraph()
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            fn()
        return graph

    def clear(self) -> None:
        """Forget every graph (the buffers they point at are being replaced)."""
        self.graphs.clear()
