"""Composition root of the engine process (`songbot engine`).

With ENGINE_METRICS_PORT set, the monitoring port opens before the models load, so `/healthz`
answers at once and `/readyz` turns ready once the loop serves. The owner id (the lease owner of
this engine's jobs) names the host and the device: `host:cuda:1:pid:xxxxxx`.
"""

from __future__ import annotations

import contextlib
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
from storage.blobs.stores import open_blobs
from storage.contract.types import QueueLimits
from storage.db import make_engine
from storage.ops.metrics import EngineMetrics
from storage.ops.monitor import Readiness, database_check, start_monitor
from storage.ops.scrub import Scrubber
from storage.queue.engines import EngineIdentity, EngineRoster
from storage.settings import Settings

log = logging.getLogger("songbot.engine")

# After a stop signal, the tracks being encoded get this long to be stored (their songs are then done);
# then the encodes are abandoned and their jobs given back, so a stop stays well inside a supervisor's
# grace (`songbot chat` waits 10 s, `songbot run` 20 s) and the engine still ends cleanly.
STOP_ENCODES_S = 4.0


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
    """Serve the queue until SIGTERM or SIGINT; the jobs in progress are released for the next engine."""
    metrics = EngineMetrics()
    readiness = Readiness("models loading")
    stop = StopSignal().install()  # before the models load: a Ctrl-C then is a stop too, not a traceback
    monitor = start_monitor(metrics.registry, [readiness], settings.metrics_host, settings.engine_metrics_port)
    try:
        worker = build_worker(settings, metrics=metrics)
        if stop.requested.is_set():
            return 0
        return serve(settings, worker, metrics, readiness, stop)
    finally:
        if monitor is not None:
            monitor.stop()


class StopSignal:
    """SIGTERM and SIGINT ask the engine to stop; the worker, once there is one, is told at once.

    The handler itself only writes the signal's number to a pipe. Python runs a handler in the main
    thread between any two bytecodes, also inside a lock that thread holds or inside the handler itself
    (Ctrl-C reaches the engine's group, and its supervisor's SIGTERM follows a few milliseconds later):
    a handler that logged or set an `Event` there could wait for itself forever. A listener thread
    reads the pipe and does the rest.
    """

    def __init__(self, encodes_s: float = STOP_ENCODES_S) -> None:
        self.requested = threading.Event()
        self.worker: Worker | None = None
        self.encodes_s = encodes_s
        self._deadline: threading.Timer | None = None
        self._lock = threading.Lock()  # the listener and `attach` both may stop the worker
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._listener = threading.Thread(target=self._listen, name="engine-signals", daemon=True)

    def install(self) -> StopSignal:
        """Handle both signals from now on (this must be the main thread)."""
        self._listener.start()
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def attach(self, worker: Worker) -> None:
        """Stop `worker` on the next signal (or now, if one came already)."""
        with self._lock:
            self.worker = worker
            if self.requested.is_set():
                self._stop(worker)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe already holds a stop
            os.write(self._write_fd, bytes([signum]))

    def _listen(self) -> None:
        while data := os.read(self._read_fd, 64):
            for signum in data:
                self._handle(signum)

    def _handle(self, signum: int) -> None:
        log.info("stopping on signal", extra={"signal": signum})
        with self._lock:
            self.requested.set()
            if self.worker is not None:
                self._stop(self.worker)

    def _stop(self, worker: Worker) -> None:
        worker.stop()
        if self._deadline is None:  # the first signal sets the deadline; a second one (Ctrl-C, then SIGTERM) keeps it
            self._deadline = threading.Timer(self.encodes_s, worker.encoder.abandon)
            self._deadline.daemon = True
            self._deadline.start()


def serve(
    settings: Settings, worker: Worker, metrics: EngineMetrics, readiness: Readiness, stop: StopSignal | None = None
) -> int:
    """Run the worker loop with its presence beating, until a signal; then give its jobs back."""
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
    (stop or StopSignal().install()).attach(worker)
    # Spawned by the main thread, the encode processes also get the kernel's parent-death signal.
    worker.encoder.start()
    serving.set()
    presence.start()
    try:
        worker.run()
    finally:
        serving.clear()
        release_left(worker)
        presence.stop()
    return 0


def release_left(worker: Worker) -> None:
    """Give back the jobs this engine still leases (one stopped before it was stored), so they run at once."""
    try:
        released = worker.queue.release_owned(worker.config.owner)
    except Exception as error:  # noqa: BLE001 - their leases run out and the reaper requeues them
        log.warning("could not release the jobs left", extra={"error": type(error).__name__})
        return
    if released:
        log.info("released jobs on stop", extra={"jobs": released})
