"""The engine's metrics hooks: small calls from the worker into one observer object.

The worker calls `observer.timed(stage, …)` around planning and storing, `observer.generating(…)`
around the GPU stage, and `observer.encoding(future)` when it hands a track to the encode pool;
`CountingQueue` counts the jobs' outcomes where the queue records them. Tests that build a
`Worker` without an observer get one with a private registry.

Generating and decoding (the VAE) run inside one backend call. The backend reports its stages
through the progress callback: "generating" up to 100% when the DiT's last step is done, then
"decoding" 100% when the VAE is. When a batch reported "decoding", the time after its last
"generating 100%" report (or, without one, after its first "decoding" report) counts as decoding;
the sketch backend has no decoding stage, so all of its time is generating.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from engine.protocol import Progress
from storage.contract.types import JobView, NewTrack, QueueLimits
from storage.ops.metrics import EngineMetrics
from storage.ops.scrub import Scrubber
from storage.queue.jobs import Queue

T = TypeVar("T")
R = TypeVar("R")


class EngineObserver:
    """Turns the worker's stage boundaries into metrics."""

    def __init__(self, metrics: EngineMetrics | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics or EngineMetrics()
        self.clock = clock

    def claimed(self, size: int) -> None:
        """A batch of `size` jobs was claimed."""
        self.metrics.batch_size.observe(size)

    def timed(self, stage: str, work: Callable[..., T], *args: Any) -> T:
        """Run `work(*args)` and record its time under `stage`, whether or not it raised."""
        started = self.clock()
        try:
            return work(*args)
        finally:
            self.metrics.stage_seconds.labels(stage).observe(self.clock() - started)

    def generating(self, generate: Callable[[R, Progress], T], requests: R, progress: Progress) -> T:
        """Run the GPU stage; its time is busy time, split into generating and decoding."""
        started = self.clock()
        marks: dict[str, float] = {}  # "steps done": the last generating 100%; "decoding": the first decoding

        def watch(job_id: int | None, stage: str, percent: float) -> None:
            if stage == "generating" and percent >= 100:
                marks["steps done"] = self.clock()
            elif stage == "decoding":
                marks.setdefault("decoding", self.clock())
            progress(job_id, stage, percent)

        try:
            return generate(requests, watch)
        finally:
            self._split(started, self.clock(), marks)

    def _split(self, started: float, ended: float, marks: dict[str, float]) -> None:
        split = ended
        if "decoding" in marks:
            split = min(marks.get("steps done", marks["decoding"]), marks["decoding"])
        self.metrics.stage_seconds.labels("generating").observe(split - started)
        if "decoding" in marks:
            self.metrics.stage_seconds.labels("decoding").observe(ended - split)
        self.metrics.busy_seconds.inc(ended - started)

    def encoding(self, future: Future[Any]) -> None:
        """A track went to the encode pool: its encoding time ends when the future does."""
        started = self.clock()
        future.add_done_callback(
            lambda _: self.metrics.stage_seconds.labels("encoding").observe(self.clock() - started)
        )


class CountingQueue(Queue):
    """The queue, counting the outcomes this engine records (succeeded, failed, released)."""

    def __init__(
        self, db: Any, limits: QueueLimits | None, metrics: EngineMetrics, scrub: Scrubber | None = None
    ) -> None:
        super().__init__(db, limits, scrub)
        self.metrics = metrics

    def complete(self, job: JobView, owner: str, track: NewTrack, now: datetime) -> None:
        """See `Queue.complete`."""
        super().complete(job, owner, track, now)
        self.metrics.jobs.labels(job.kind, "succeeded").inc()

    def fail(self, job: JobView, owner: str, message: str, now: datetime) -> bool:
        """See `Queue.fail`."""
        failed = super().fail(job, owner, message, now)
        if failed:
            self.metrics.jobs.labels(job.kind, "failed").inc()
        return failed

    def release(self, job: JobView, owner: str, alone: bool = False) -> bool:
        """See `Queue.release`."""
        released = super().release(job, owner, alone)
        if released:
            self.metrics.jobs.labels(job.kind, "released").inc()
        return released


class GpuMemoryCollector(Collector):
    """The CUDA allocator's memory on the engine's device, read at scrape time (nothing without CUDA)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        """Allocated, reserved and total bytes, when torch is loaded and the device is a CUDA device."""
        torch = sys.modules.get("torch")  # never imported for this: a sketch engine has no torch
        if torch is None or not self.device.startswith("cuda") or not torch.cuda.is_available():
            return
        with self._lock:
            index = torch.device(self.device).index or 0
            readings = {
                "allocated": torch.cuda.memory_allocated(index),
                "reserved": torch.cuda.memory_reserved(index),
                "total": torch.cuda.get_device_properties(index).total_memory,
            }
        for name, value in readings.items():
            family = GaugeMetricFamily(
                f"songbot_engine_gpu_memory_{name}_bytes", f"CUDA memory {name} on the device.", labels=["device"]
            )
            family.add_metric([self.device], float(value))
            yield family

    def describe(self) -> Iterator[Metric]:
        """Nothing up front."""
        return iter(())
