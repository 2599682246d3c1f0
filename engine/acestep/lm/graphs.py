"""Step functions run eagerly, or captured once per key as CUDA graphs and replayed (the fast path's steps).

:func:`bucket` sizes the row buckets that, with the attention window, key the graphs.

Capture beside a running DiT. The planner captures in its own thread while the engine's DiT
may be running in another, so a capture must neither stall nor disturb it:

- it runs on a side stream from torch's pool, which is non-blocking: the DiT's work on the
  default stream creates no implicit dependency into the capture;
- in ``thread_local`` error mode: the DiT thread's synchronising calls (a copy to the host,
  an allocation) stay legal while this thread captures;
- without ``torch.cuda.graph``'s prelude (``synchronize()``, ``gc.collect()``, ``empty_cache()``):
  nothing waits for the DiT's queued work and its cached memory stays where it is;
- one capture or replay at a time among the planner's decoders (``_CUDA_GRAPHS``).

If a capture fails anyway, the graphs are switched off (one log line with the cause) and the
steps run eagerly: the same functions, the same tokens. If the eager path fails too, the
planner falls back to its reference loop (:meth:`Planner._decode`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)

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
        # Called once when a capture fails (FastEngine switches its other decoders' graphs off too).
        self.on_failure: Callable[[], None] | None = None

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
            if graph is None and not self.enabled:  # another decoder's capture failed meanwhile
                fn()
                return
            if graph is None:
                graph = self._capture_or_none(fn, save, restore)
                if graph is None:
                    fn()
                    return
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

    def _capture_or_none(
        self, fn: Callable[[], None], save: Callable[[], object] | None, restore: Callable[[object], None] | None
    ) -> torch.cuda.CUDAGraph | None:
        """Capture ``fn``; on failure switch the graphs off for good and return None (the caller runs it eagerly).

        The warm-up run's state updates are undone in both cases, so the step then runs once.
        """
        state = save() if save else None

        def undo() -> None:
            if restore:
                restore(state)

        try:
            return self._capture(fn, undo)
        except Exception as error:  # noqa: BLE001 - any capture failure: the eager step is the same computation
            undo()
            log.warning("CUDA graph capture failed, the planner's steps run eagerly from now on: %r", error)
            self.enabled = False
            self.graphs.clear()
            if self.on_failure is not None:
                self.on_failure()
            return None

    def _capture(self, fn: Callable[[], None], undo: Callable[[], None]) -> torch.cuda.CUDAGraph:
        side = torch.cuda.Stream()  # from torch's pool: a non-blocking stream (see the module docstring)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # warm-up (kernel selection, workspaces)
        torch.cuda.current_stream().wait_stream(side)
        undo()  # the warm-up's updates; the capture below runs no kernel
        graph = torch.cuda.CUDAGraph()
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        with torch.cuda.stream(side):
            graph.capture_begin(pool=self.pool, capture_error_mode="thread_local")
            try:
                fn()
            except BaseException:
                with contextlib.suppress(Exception):  # end the capture; the step's own error is the cause
                    graph.capture_end()
                raise
            graph.capture_end()
        return graph

    def clear(self) -> None:
        """Forget every graph (the buffers they point at are being replaced)."""
        self.graphs.clear()
