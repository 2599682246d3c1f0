"""Composition root of the engine process (`songbot engine`).

With ENGINE_METRICS_PORT set, the monitoring port opens before the models load, so `/healthz`
answers at once and `/readyz` turns ready once the loop serves. The owner id (the lease owner of
this engine's jobs) names the host and the device: `host:cuda:1:pid:xxxxxx`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from types import FrameType

from engine.backends import load_backend
from engine.encode import EncodePool
from engine.failures import Backoff
from engine.observer import CountingQueue, EngineObserver, GpuMemoryCollector
from engine.presence import Presence
from engine.protocol import Generator
from engine.worker import Worker, WorkerConfig
from migrations import upgrade
from storage.db import make_engine
from storage.engines import EngineIdentity, EngineRoster
from storage.metrics import EngineMetrics
from storage.monitor import Readiness, database_check, start_monitor
from storage.scrub import Scrubber
from storage.settings import Settings
from storage.stores import open_blobs
from storage.types import QueueLimits

log = logging.getLogger("songbot.engine")


def build_worker(settings: Settings, migrate: bool = True, metrics: EngineMetrics | None = None) -> Worker:
    """Load the backend once and wire it to the queue and the blob store."""
    engine = make_engine(settings.db_url)
    if migrate:
        upgrade(engine)
    generator = load_backend(
        settings.engine_backend,
        settings.model_dir,
        settings.engine_max_batch,
        device=settings.engine_device,
        lm_model=settings.lm_model,
        lm_backend=settings.lm_backend,
        lm_thinking=settings.lm_thinking,
        max_duration_s=settings.max_duration_s,
        exact_batches=settings.engine_exact_batches,
    )
    config = WorkerConfig(
        owner=owner_id(socket.gethostname(), device_of(settings, generator), os.getpid()),
        max_batch=settings.engine_max_batch,
        lease_s=settings.engine_lease_s,
        poll_s=settings.engine_poll_s,
        max_source_duration_s=settings.max_source_duration_s,
        store_backoff=Backoff(settings.engine_store_attempts, settings.engine_store_backoff_s),
    )
    observer = EngineObserver(metrics)
    limits = QueueLimits(max_attempts=settings.engine_max_attempts)
    queue = CountingQueue(engine, limits, observer.metrics, Scrubber(settings.secrets()))
    encoder = EncodePool(settings.engine_encode_processes)
    return Worker(queue, open_blobs(settings), generator, config, encoder=encoder, observer=observer)


def device_of(settings: Settings, generator: Generator) -> str:
    """The device the engine runs on: ENGINE_DEVICE, or what `auto` chose (the sketch backend: cpu)."""
    if settings.engine_device != "auto":
        return settings.engine_device
    return str(getattr(generator, "device", "cpu"))


def owner_id(host: str, device: str, pid: int) -> str:
    """A lease owner that says where the engine runs, unique across restarts."""
    return f"{host}:{device}:{pid}:{uuid.uuid4().hex[:6]}"


def run_engine(settings: Settings) -> int:
    """Serve the queue until SIGTERM or SIGINT; a job in progress is released for the next engine."""
    metrics = EngineMetrics()
    readiness = Readiness("models loading")
    monitor = start_monitor(metrics.registry, [readiness], settings.metrics_host, settings.engine_metrics_port)
    try:
        return serve(settings, build_worker(settings, metrics=metrics), metrics, readiness)
    finally:
        if monitor is not None:
            monitor.stop()


def serve(settings: Settings, worker: Worker, metrics: EngineMetrics, readiness: Readiness) -> int:
    """Run the worker loop with its presence beating, until a signal."""
    device = device_of(settings, worker.generator)
    metrics.info.labels(device, worker.generator.name).set(1)
    metrics.registry.register(GpuMemoryCollector(device))
    me = EngineIdentity(worker.config.owner, socket.gethostname(), device, worker.generator.name, os.getpid())
    serving = threading.Event()
    presence = Presence(
        EngineRoster(worker.queue.engine),
        me,
        every_s=settings.engine_lease_s / 3,
        serving=lambda: serving.is_set() and not worker.stop_event.is_set(),
    )
    readiness.use(database_check(worker.queue.engine), presence.ready)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping on signal", extra={"signal": signum})
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving.set()
    presence.start()
    try:
        worker.run()
    finally:
        serving.clear()
        presence.stop()
    return 0
