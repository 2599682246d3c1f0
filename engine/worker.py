"""The engine loop: claim a fair batch, generate, encode, store, repeat.

It touches the database (through `storage.queue.Queue`) and the blob directory, never a chat
platform. It runs in its own process in production (`songbot engine`) and in a thread in the
tests, behind the same class. While a batch runs, a heartbeat thread renews the leases; if a
lease is lost, or a stop is asked for, the next progress call aborts the batch, and on a stop
the jobs go back to the queue for the next engine.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from engine.protocol import GeneratedTrack, Generator, TrackRequest, request_for
from storage import audio
from storage.blobs import Blobs, sha256_of
from storage.db import utcnow
from storage.errors import GENERIC_FAILURE, BadAudio, GenerationError, LeaseLost
from storage.queue import Queue
from storage.types import JobView, NewTrack

log = logging.getLogger("songbot.engine")

REPORT_EVERY_S = 0.5
ENCODE_THREADS = max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class WorkerConfig:
    """How the loop behaves."""

    owner: str
    max_batch: int = 4
    lease_s: float = 30.0
    poll_s: float = 0.5
    max_source_duration_s: float = 600.0


class Stopping(Exception):
    """Raised inside a batch to abandon it: a stop was asked for or a lease was lost."""


class Worker:
    """One engine: a loaded backend serving the queue."""

    def __init__(self, queue: Queue, blobs: Blobs, generator: Generator, config: WorkerConfig,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.queue = queue
        self.blobs = blobs
        self.generator = generator
        self.config = config
        self.clock = clock
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Serve until `stop()`; each pass reaps expired leases and claims one batch."""
        log.info("engine ready", extra={"backend": self.generator.name, "owner": self.config.owner})
        while not self.stop_event.is_set():
            if not self.run_once():
                self.stop_event.wait(self.config.poll_s)
        log.info("engine stopped", extra={"owner": self.config.owner})

    def stop(self) -> None:
        """Ask the loop to stop; a running batch is abandoned and its jobs released."""
        self.stop_event.set()

    def run_once(self) -> bool:
        """Reap, claim and process one batch. Returns whether there was any work."""
        now = self.clock()
        for job_id, status in self.queue.reap(now):
            log.warning("reaped job", extra={"job": job_id, "status": status})
        size = min(self.config.max_batch, self.generator.max_batch)
        batch = self.queue.claim(self.config.owner, size, now, self.config.lease_s)
        if batch:
            self.process(batch)
        return bool(batch)

    def process(self, batch: list[JobView]) -> None:
        """Generate a claimed batch and store each track (or fail it with a sentence)."""
        requests, ready = self._requests(batch)
        if not ready:
            return
        heartbeat = _Heartbeat(self, ready)
        heartbeat.start()
        try:
            results = self.generator.generate(requests, self._progress(ready, heartbeat))
        except Stopping:
            self._release(ready)
            return
        except GenerationError as error:
            self._fail_all(ready, error.user_message)
            return
        except Exception:
            log.exception("backend failed", extra={"jobs": [job.id for job in ready]})
            self._fail_all(ready, GENERIC_FAILURE)
            return
        finally:
            heartbeat.stop()
        # MP3 encoding runs on the CPU at a few tens of times real time: encode a batch's tracks side by
        # side (libsndfile releases the GIL) so the GPU is not kept waiting for one core.
        pairs = list(zip(ready, results, strict=True))
        with ThreadPoolExecutor(max_workers=min(len(pairs), ENCODE_THREADS)) as pool:
            list(pool.map(lambda pair: self._store(*pair), pairs))

    def _requests(self, batch: list[JobView]) -> tuple[list[TrackRequest], list[JobView]]:
        requests, ready = [], []
        for job in batch:
            try:
                requests.append(self._request(job))
                ready.append(job)
            except BadAudio as error:
                self.queue.fail(job, self.config.owner, error.user_message, self.clock())
        return requests, ready

    def _request(self, job: JobView) -> TrackRequest:
        source = None
        if job.source_blob:
            data = self.blobs.path(job.source_blob).read_bytes()
            source = audio.decode(data, self.config.max_source_duration_s)
        return request_for(job, source)

    def _progress(self, jobs: list[JobView], heartbeat: _Heartbeat) -> Callable[[int | None, str, float], None]:
        by_id = {job.id: job for job in jobs}
        last: dict[int, float] = {}

        def report(job_id: int | None, stage: str, percent: float) -> None:
            if self.stop_event.is_set() or heartbeat.lost:
                raise Stopping
            now = time.monotonic()
            for target in [by_id[job_id]] if job_id in by_id else jobs:
                if now - last.get(target.id, 0.0) >= REPORT_EVERY_S or percent >= 100:
                    last[target.id] = now
                    if not self.queue.report(target, self.config.owner, stage, percent, self.clock(),
                                             self.config.lease_s):
                        heartbeat.lost = True
                        raise Stopping

        return report

    def _store(self, job: JobView, result: GeneratedTrack) -> None:
        self.queue.report(job, self.config.owner, "saving", 100.0, self.clock(), self.config.lease_s)
        if not _finite(result):
            self.queue.fail(job, self.config.owner, "The model produced broken audio for this song; "
                            "please try again with another seed.", self.clock())
            return
        relative = self.blobs.track_relative(job.id, job.attempts)
        temp = self.blobs.temp_path(relative)
        tags = audio.Tags(title=result.title, prompt=result.caption, lyrics=result.lyrics,
                          seed=result.seed, song_id=job.id)
        audio.encode_mp3(result.audio, temp, tags, rate=result.sample_rate)
        path = self.blobs.commit(temp, relative)
        track = NewTrack(
            blob_path=relative, duration_s=result.audio.shape[0] / result.sample_rate, seed=result.seed,
            sha256=sha256_of(path), title=result.title, caption=result.caption, lyrics=result.lyrics,
            meta=result.metadata, model=result.model, plan=result.plan, notice=result.notice,
        )
        try:
            self.queue.complete(job, self.config.owner, track, self.clock())
            log.info("job done", extra={"job": job.id, "seconds": track.duration_s})
        except LeaseLost:
            log.warning("lease lost before completion; result dropped", extra={"job": job.id})

    def _fail_all(self, jobs: list[JobView], message: str) -> None:
        for job in jobs:
            self.queue.fail(job, self.config.owner, message, self.clock())

    def _release(self, jobs: list[JobView]) -> None:
        for job in jobs:
            self.queue.release(job, self.config.owner)
        log.info("released jobs", extra={"jobs": [job.id for job in jobs]})


def _finite(result: GeneratedTrack) -> bool:
    return bool(np.isfinite(result.audio).all())


class _Heartbeat:
    """Renews the leases of a running batch every third of the lease."""

    def __init__(self, worker: Worker, jobs: list[JobView]) -> None:
        self.worker = worker
        self.jobs = jobs
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        config = self.worker.config
        while not self._done.wait(config.lease_s / 3):
            for job in self.jobs:
                if not self.worker.queue.renew(job, config.owner, self.worker.clock(), config.lease_s):
                    self.lost = True
