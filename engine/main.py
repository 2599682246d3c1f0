"""Composition root of the engine process (`songbot engine`)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import uuid
from types import FrameType

from engine.backends import load_backend
from engine.encode import EncodePool
from engine.worker import Worker, WorkerConfig
from migrations import upgrade
from storage.blobs import Blobs
from storage.db import make_engine
from storage.queue import Queue
from storage.settings import Settings
from storage.types import QueueLimits

log = logging.getLogger("songbot.engine")


def build_worker(settings: Settings, migrate: bool = True) -> Worker:
    """Load the backend once and wire it to the queue and the blob directory."""
    engine = make_engine(settings.db_url)
    if migrate:
        upgrade(engine)
    generator = load_backend(
        settings.engine_backend,
        settings.model_dir,
        settings.engine_device,
        settings.engine_max_batch,
        settings.lm_model,
        settings.lm_backend,
        settings.lm_thinking,
        settings.max_duration_s,
        settings.engine_exact_batches,
    )
    config = WorkerConfig(
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        max_batch=settings.engine_max_batch,
        lease_s=settings.engine_lease_s,
        poll_s=settings.engine_poll_s,
        max_source_duration_s=settings.max_source_duration_s,
    )
    queue = Queue(engine, QueueLimits(max_attempts=settings.engine_max_attempts))
    return Worker(
        queue, Blobs(settings.blob_dir), generator, config, encoder=EncodePool(settings.engine_encode_processes)
    )


def run_engine(settings: Settings) -> int:
    """Serve the queue until SIGTERM or SIGINT; a job in progress is released for the next engine."""
    worker = build_worker(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping on signal", extra={"signal": signum})
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.run()
    return 0
