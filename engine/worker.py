"""The engine loop: claim a fair batch, plan it, generate it, encode and store it; a pipeline.

It touches the database (through `storage.queue.Queue`) and the blob directory, never a chat
platform. It runs in its own process in production (`songbot engine`) and in a thread in the
tests, behind the same class.

`run()` overlaps three stages so the GPU never waits for a CPU:

    planner threads  claim batches k+2 and k+3, decode uploads, plan them (LM)  ─┐ two batches ahead
    loop thread      generate batch k+1 (DiT + VAE), batches taken in claim order ◄┘
    store threads    encode batch k in spawned processes, tag, commit, complete (two batches at most)

With an LM stage, two planner threads plan at the same time, so a batch claimed while another is
being planned joins its decoding at the next step (the LM's fast path decodes concurrent plans
together). Without one (the sketch backend), one batch is claimed ahead: a claim ahead is a place
in line a light user who arrives later can no longer take.

From its claim until its track is stored, each batch has a heartbeat thread renewing its leases. A
job is done only once its track is stored (the completion is fenced by the lease); a failed encode
fails that job alone. If a lease is lost or a stop is asked for, the next progress call aborts the
generation; on a stop, batches not yet generated go back to the queue and batches being stored
finish. `run_once()` runs the same stages one after another (tests, benchmarks).
"""

from __future__ import annotations

import logging
import queue as queues
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

from engine.encode import EncodePool
from engine.protocol import GeneratedTrack, Generator, Progress, TrackRequest, request_for
from storage import audio
from storage.blobs import Blobs
from storage.db import utcnow
from storage.errors import GENERIC_FAILURE, BadAudio, GenerationError, LeaseLost
from storage.queue import Queue
from storage.types import JobView, NewTrack

log = logging.getLogger("songbot.engine")
T = TypeVar("T")

REPORT_EVERY_S = 0.5
STORING_BATCHES = 2  # generated batches waiting for their MP3s before the GPU loop waits
# Batches claimed ahead of the GPU loop and planned at the same time, for a backend with an LM stage.
# Each batch claimed ahead is a batch a newly arrived light user can no longer jump, so a backend
# without one claims a single batch ahead.
PLANNING_BATCHES = 2
SAVE_FAILED = "I couldn't save this song as an MP3; please try again."
BROKEN_AUDIO = "The model produced broken audio for this song; please try again with another seed."


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


@dataclass
class _Batch:
    """Claimed jobs on their way through the stages."""

    jobs: list[JobView]
    requests: list[TrackRequest]
    heartbeat: _Heartbeat
    progress: Progress


@dataclass
class _Encoding:
    """One track handed to the encode pool."""

    pcm: np.ndarray
    temp: Path
    tags: audio.Tags
    future: Future[str]


class Worker:
    """One engine: a loaded backend serving the queue."""

    def __init__(
        self,
        queue: Queue,
        blobs: Blobs,
        generator: Generator,
        config: WorkerConfig,
        clock: Callable[[], datetime] = utcnow,
        encoder: EncodePool | None = None,
    ) -> None:
        self.queue = queue
        self.blobs = blobs
        self.generator = generator
        self.config = config
        self.clock = clock
        self.encoder = encoder or EncodePool(0)
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Serve until `stop()`, planning, generating and storing different batches at once."""
        log.info("engine ready", extra={"backend": self.generator.name, "owner": self.config.owner})
        planned: queues.Queue[Future[_Batch | None]] = queues.Queue()  # one slot per claimed batch, in claim order
        planners_count = PLANNING_BATCHES if hasattr(self.generator, "plan") else 1
        ahead = threading.Semaphore(planners_count)  # batches claimed and not yet taken by the GPU loop
        claiming = threading.Lock()  # a claim and its slot go in together, so slots keep the claim order
        room = threading.Semaphore(STORING_BATCHES)
        planners = [
            threading.Thread(
                target=self._plan_ahead, args=(planned, ahead, claiming), name=f"engine-planner-{n}", daemon=True
            )
            for n in range(planners_count)
        ]
        storing = ThreadPoolExecutor(STORING_BATCHES, thread_name_prefix="engine-store")
        for planner in planners:
            planner.start()
        try:
            while not self.stop_event.is_set():
                try:
                    slot = planned.get(timeout=self.config.poll_s)
                except queues.Empty:
                    continue
                batch = slot.result()  # the oldest claim first, even when a later one was planned sooner
                ahead.release()
                if batch is None:
                    continue
                if not self._acquire(room):
                    self._abandon(batch)
                    break
                results = self._generate(batch)
                if results is None:
                    room.release()
                    continue
                storing.submit(self._store_batch, batch, results).add_done_callback(lambda _: room.release())
        finally:
            self.stop_event.set()
            for planner in planners:
                planner.join()
            while not planned.empty():
                left = planned.get_nowait().result()
                if left is not None:
                    self._abandon(left)
            storing.shutdown(wait=True)
            self.encoder.close()
        log.info("engine stopped", extra={"owner": self.config.owner})

    def stop(self) -> None:
        """Ask the loop to stop; a batch not yet generated is abandoned and its jobs released."""
        self.stop_event.set()

    def run_once(self) -> bool:
        """Reap, claim, plan, generate and store one batch, in turn. Returns whether there was any work."""
        claimed, batch = self._claim()
        if batch is not None:
            self._process_batch(batch)
        return claimed

    def process(self, jobs: list[JobView]) -> None:
        """Plan, generate and store already claimed jobs (or fail each with a sentence)."""
        batch = self._prepare(jobs)
        if batch is not None:
            self._process_batch(batch)

    def _process_batch(self, batch: _Batch) -> None:
        """The three stages of one batch, one after another."""
        if not self._plan(batch):
            return
        results = self._generate(batch)
        if results is not None:
            self._store_batch(batch, results)

    # -- stages -------------------------------------------------------------------------------------

    def _plan_ahead(
        self, planned: queues.Queue[Future[_Batch | None]], ahead: threading.Semaphore, claiming: threading.Lock
    ) -> None:
        """A planner thread: claim a batch, queue its slot, plan it, and fill the slot (None: it ended here)."""
        while self._acquire(ahead):
            slot: Future[_Batch | None] = Future()
            with claiming:
                try:
                    claimed, batch = self._claim()
                except Exception:
                    log.exception("claiming failed")
                    claimed, batch = False, None
                if batch is not None:
                    planned.put(slot)
            if batch is None:
                ahead.release()
                if not claimed:
                    self.stop_event.wait(self.config.poll_s)
                continue
            try:
                slot.set_result(batch if self._plan(batch) else None)
            finally:
                if not slot.done():  # only a bug in our own code gets here: give the jobs back
                    self._abandon(batch)
                    slot.set_result(None)

    def _claim(self) -> tuple[bool, _Batch | None]:
        """Reap expired leases and claim a batch; (whether anything was claimed, the usable batch)."""
        now = self.clock()
        for job_id, status in self.queue.reap(now):
            log.warning("reaped job", extra={"job": job_id, "status": status})
        size = min(self.config.max_batch, self.generator.max_batch)
        jobs = self.queue.claim(self.config.owner, size, now, self.config.lease_s)
        return bool(jobs), self._prepare(jobs) if jobs else None

    def _prepare(self, jobs: list[JobView]) -> _Batch | None:
        requests, ready = self._requests(jobs)
        if not ready:
            return None
        heartbeat = _Heartbeat(self, ready)
        heartbeat.start()
        return _Batch(ready, requests, heartbeat, self._progress(ready, heartbeat))

    def _plan(self, batch: _Batch) -> bool:
        """The backend's planning stage (the LM), when it has one; False when the batch ended here."""
        plan = getattr(self.generator, "plan", None)
        if plan is None:
            return True
        planned = self._guarded(batch, lambda: plan(batch.requests, batch.progress))
        if planned is None:
            return False
        batch.requests = planned
        return True

    def _generate(self, batch: _Batch) -> list[GeneratedTrack] | None:
        """The GPU stage; None when the batch ended here (stopped, failed)."""
        return self._guarded(batch, lambda: self.generator.generate(batch.requests, batch.progress))

    def _guarded(self, batch: _Batch, stage: Callable[[], T]) -> T | None:
        """Run a stage; a stop releases the batch, an error fails all of it with a sentence."""
        try:
            return stage()
        except Stopping:
            self._abandon(batch)
        except GenerationError as error:
            self._fail_all(batch.jobs, error.user_message)
            batch.heartbeat.stop()
        except Exception:
            log.exception("backend failed", extra={"jobs": [job.id for job in batch.jobs]})
            self._fail_all(batch.jobs, GENERIC_FAILURE)
            batch.heartbeat.stop()
        return None

    def _store_batch(self, batch: _Batch, results: list[GeneratedTrack]) -> None:
        """Hand every track to the encode pool at once, then store each in order as its MP3 is ready."""
        try:
            pending = [self._encode(job, result) for job, result in zip(batch.jobs, results, strict=True)]
            for job, result, encoding in zip(batch.jobs, results, pending, strict=True):
                if encoding is not None:
                    self._store(job, result, encoding)
        except Exception:
            log.exception("storing failed", extra={"jobs": [job.id for job in batch.jobs]})
        finally:
            batch.heartbeat.stop()

    def _encode(self, job: JobView, result: GeneratedTrack) -> _Encoding | None:
        self.queue.report(job, self.config.owner, "saving", 100.0, self.clock(), self.config.lease_s)
        if result.error is not None:  # this track alone failed; the rest of its batch is stored
            self.queue.fail(job, self.config.owner, result.error, self.clock())
            return None
        if not _finite(result):
            self.queue.fail(job, self.config.owner, BROKEN_AUDIO, self.clock())
            return None
        tags = audio.Tags(
            title=result.title, prompt=result.caption, lyrics=result.lyrics, seed=result.seed, song_id=job.id
        )
        pcm = audio.to_pcm16(result.audio)  # half the bytes to send, and the child does not clip
        temp = self.blobs.temp_path(self.blobs.track_relative(job.id, job.attempts))
        return _Encoding(pcm, temp, tags, self.encoder.submit(pcm, result.sample_rate, temp, tags))

    def _store(self, job: JobView, result: GeneratedTrack, encoding: _Encoding) -> None:
        """Wait for the job's MP3, commit it and complete the job; a failed encode fails this job alone."""
        try:
            try:
                sha256 = encoding.future.result()
            except BrokenProcessPool:
                sha256 = self.encoder.retry(encoding.pcm, result.sample_rate, encoding.temp, encoding.tags)
        except Exception:
            log.exception("encoding failed", extra={"job": job.id})
            encoding.temp.unlink(missing_ok=True)
            self.queue.fail(job, self.config.owner, SAVE_FAILED, self.clock())
            return
        relative = self.blobs.track_relative(job.id, job.attempts)
        self.blobs.commit(encoding.temp, relative)
        track = NewTrack(
            blob_path=relative,
            duration_s=result.audio.shape[0] / result.sample_rate,
            seed=result.seed,
            sha256=sha256,
            title=result.title,
            caption=result.caption,
            lyrics=result.lyrics,
            meta=result.metadata,
            model=result.model,
            plan=result.plan,
            notice=result.notice,
        )
        try:
            self.queue.complete(job, self.config.owner, track, self.clock())
            log.info("job done", extra={"job": job.id, "seconds": track.duration_s})
        except LeaseLost:
            log.warning("lease lost before completion; result dropped", extra={"job": job.id})

    def _acquire(self, semaphore: threading.Semaphore) -> bool:
        """Wait for a slot; False once a stop is asked for."""
        while not self.stop_event.is_set():
            if semaphore.acquire(timeout=self.config.poll_s):
                return True
        return False

    def _abandon(self, batch: _Batch) -> None:
        batch.heartbeat.stop()
        self._release(batch.jobs)

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
                    if not self.queue.report(
                        target, self.config.owner, stage, percent, self.clock(), self.config.lease_s
                    ):
                        heartbeat.lost = True
                        raise Stopping

        return report

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
