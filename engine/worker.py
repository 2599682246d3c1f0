"""The engine loop: claim a fair batch, plan it, generate it, encode and store it; a pipeline.

It touches the database (through `storage.queue.jobs.Queue`) and the blob directory, never a chat
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
job is done only once its track is stored (the completion is fenced by the lease). If a lease is
lost or a stop is asked for, the next progress call aborts the generation; on a stop, batches not
yet generated go back to the queue and batches being stored finish. `run_once()` runs the same
stages one after another (tests, benchmarks).

A job that makes no track (`timing`: a stored song's lyrics timed again) runs in the GPU stage, before
the batch's songs, through `Generator.time_lyrics`; it ends with its result in the queue
(`Queue.complete_timing`) and leaves the batch, so the songs' stages never see it.

No job ends the process: each stage of each job runs under a guard (`_guard` per job, `_guarded`
for a batch on the model) that fails that job alone with a sentence (`engine/failures.py`), and
the loop goes on with its models loaded. Storing retries storage errors (a full disk, a read-only
folder, a database that does not answer) with back-off before it gives up, and a job's scratch
file is removed on every path.
"""

from __future__ import annotations

import logging
import queue as queues
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from engine import inputs, scratch
from engine.encode import EncodePool, PoolClosed
from engine.failures import Backoff, job_sentence, retrying, saving_sentence, transient
from engine.lease import Heartbeat as _Heartbeat
from engine.observer import EngineObserver
from engine.protocol import GeneratedTrack, Generator, Progress, TrackRequest
from storage.blobs.store import BlobStore
from storage.contract.errors import GENERIC_FAILURE, GenerationError, LeaseLost
from storage.contract.spec import Description
from storage.contract.types import DESCRIBE, JobView, NewTrack
from storage.db import utcnow
from storage.media import audio
from storage.ops.repeats import RepeatedErrors
from storage.queue.jobs import Queue
from storage.queue.library import Library

log = logging.getLogger("songbot.engine")
T = TypeVar("T")

REPORT_EVERY_S = 0.5
STORING_BATCHES = 2  # generated batches waiting for their MP3s before the GPU loop waits
# Batches claimed ahead of the GPU loop and planned at the same time, for a backend with an LM stage.
# Each batch claimed ahead is a batch a newly arrived light user can no longer jump, so a backend
# without one claims a single batch ahead.
PLANNING_BATCHES = 2
BROKEN_AUDIO = "The model produced broken audio for this song; please try again with another seed."


@dataclass(frozen=True)
class WorkerConfig:
    """How the loop behaves."""

    owner: str
    max_batch: int = 4
    lease_s: float = 30.0
    poll_s: float = 0.5
    max_source_duration_s: float = 600.0
    store_backoff: Backoff = field(default_factory=Backoff)  # retries of a storage error while storing


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
    """One track handed to the encode pool (again, after a storage error)."""

    pcm: np.ndarray
    rate: int
    tags: audio.Tags
    temp: Path | None = None
    future: Future[str] = field(default_factory=Future)


class Worker:
    """One engine: a loaded backend serving the queue."""

    def __init__(
        self,
        queue: Queue,
        blobs: BlobStore,
        generator: Generator,
        config: WorkerConfig,
        clock: Callable[[], datetime] = utcnow,
        encoder: EncodePool | None = None,
        sleep: Callable[[float], object] | None = None,
        observer: EngineObserver | None = None,
    ) -> None:
        self.queue = queue
        self.blobs = blobs
        self.generator = generator
        self.config = config
        self.clock = clock
        self.encoder = encoder or EncodePool(0)
        self.observer = observer or EngineObserver()
        self.library = Library(queue.engine)
        self.stop_event = threading.Event()
        self.sleep = sleep or self.stop_event.wait  # back-off between storage retries; a stop cuts it short
        self.sweeper = scratch.Sweeper(blobs.scratch_root())
        self.claim_errors = RepeatedErrors(log, "claiming")

    def run(self) -> None:
        """Serve until `stop()`, planning, generating and storing different batches at once."""
        log.info("engine ready", extra={"backend": self.generator.name, "owner": self.config.owner})
        planned: queues.Queue[Future[_Batch | None]] = queues.Queue()  # one slot per claimed batch, in claim order
        planners_count = PLANNING_BATCHES if self.generator.plans_ahead else 1
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
                    self.claim_errors.recovered()
                except Exception as error:  # noqa: BLE001 - the database down: logged once, then with a count
                    self.claim_errors.failed(error)
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
        self.sweeper.now_and_then(now)
        for job_id, status in self.queue.reap(now):
            log.warning("reaped job", extra={"job": job_id, "status": status})
        size = min(self.config.max_batch, self.generator.max_batch)
        jobs = self.queue.claim(self.config.owner, size, now, self.config.lease_s)
        if jobs:
            self.observer.claimed(len(jobs))
        return bool(jobs), self._prepare(jobs) if jobs else None

    def _prepare(self, jobs: list[JobView]) -> _Batch | None:
        # The leases are renewed from the claim on: reading and decoding uploads can outlast a lease.
        heartbeat = _Heartbeat(self.queue, self.config.owner, self.config.lease_s, lambda: self.clock(), jobs)
        heartbeat.start()
        try:
            requests, ready = self._requests(jobs, heartbeat)
        except BaseException:  # a bug of ours: no beats, so the leases run out and the reaper requeues the jobs
            heartbeat.stop()
            raise
        if not ready:
            heartbeat.stop()
            return None
        return _Batch(ready, requests, heartbeat, self._progress(ready, heartbeat))

    def _plan(self, batch: _Batch) -> bool:
        """The backend's planning stage (the LM), when it has one; False when the batch ended here."""
        if not self._describe(batch):
            return False
        if not self.generator.plans_ahead:
            return True
        plan = self.generator.plan
        songs = [request for job, request in zip(batch.jobs, batch.requests, strict=True) if job.makes_track]
        if not songs:  # only trackless jobs: nothing to plan
            return True
        planned = self._guarded(batch, lambda: self.observer.timed("planning", plan, songs, batch.progress))
        if planned is None:
            return False
        batch.requests = _with_planned(batch, planned)
        return True

    def _describe(self, batch: _Batch) -> bool:
        """`describe` jobs end in the planning stage: read, their result stored, done; they make no track.

        The rest of the batch goes on. False when nothing is left of it (or a stop abandoned it).
        """
        describing = [(job, r) for job, r in zip(batch.jobs, batch.requests, strict=True) if job.kind == DESCRIBE]
        for job, request in describing:
            try:
                description = self.observer.timed("describing", self.generator.describe, request, batch.progress)
            except Stopping:
                self._abandon(batch)
                return False
            except Exception as error:
                log.exception("job failed", extra={"job": job.id, "stage": "describing"})
                self._fail(job, job_sentence(error))
            else:
                self._guard(job, "saving", partial(self._keep_description, job, description), saving_sentence)
            batch.heartbeat.drop(job)
        if not describing:
            return True
        kept = [(job, r) for job, r in zip(batch.jobs, batch.requests, strict=True) if job.kind != DESCRIBE]
        batch.jobs, batch.requests = [job for job, _ in kept], [r for _, r in kept]
        if not batch.jobs:
            batch.heartbeat.stop()
            return False
        return True

    def _keep_description(self, job: JobView, description: Description) -> None:
        """Store a description as its job's result and complete the job (retried like a track's storing)."""
        complete = partial(self.queue.complete_result, job, self.config.owner, description)
        retrying(lambda _: complete(self.clock()), self.config.store_backoff, self.sleep, job.id)
        log.info("job done", extra={"job": job.id, "stage": "describing"})

    def _generate(self, batch: _Batch) -> list[GeneratedTrack] | None:
        """The GPU stage; None when the batch ended here (stopped, failed)."""
        results = self._guarded(batch, lambda: self._on_model(batch))
        if results is None or not any(request.spec.best_of > 1 for request in batch.requests):
            return results
        return self._guarded(batch, lambda: self._score(batch, results))

    def _score(self, batch: _Batch, results: list[GeneratedTrack]) -> list[GeneratedTrack]:
        """Score each made take of a `best=N` request (stored with its track; the bot posts the best).

        A take that cannot be scored keeps no score and is still a take: it is posted only if no
        other take of its request has a score.
        """
        for request, result in zip(batch.requests, results, strict=True):
            if request.spec.best_of <= 1 or result.error is not None:
                continue
            try:
                result.score = self.observer.timed("scoring", self.generator.score, request, result, batch.progress)
            except Stopping:
                raise
            except Exception:  # one take's score is not worth its song: it stays a take, unscored
                log.exception("scoring failed", extra={"job": request.job_id})
        return results

    def _on_model(self, batch: _Batch) -> list[GeneratedTrack]:
        """The batch's trackless jobs, then its songs (an empty list when only trackless jobs were claimed)."""
        self._run_trackless(batch)
        if not batch.jobs:
            return []
        return self.observer.generating(self.generator.generate, batch.requests, batch.progress)

    def _run_trackless(self, batch: _Batch) -> None:
        """Run each job that makes no track, each under its own guard, and take it out of the batch.

        A stop or a lost lease (`Stopping`) ends the whole batch, as in `generate`.
        """
        jobs, requests = [], []
        for job, request in zip(batch.jobs, batch.requests, strict=True):
            if job.makes_track:
                jobs.append(job)
                requests.append(request)
                continue
            self._guard(job, "timing", partial(self._time_lyrics, job, request, batch.progress), job_sentence)
            batch.heartbeat.drop(job)
        batch.jobs, batch.requests = jobs, requests

    def _time_lyrics(self, job: JobView, request: TrackRequest, progress: Progress) -> None:
        """A `timing` job: the song's lyrics timed from its latents, stored on its track (no new track)."""
        timing = self.observer.timed("timing", self.generator.time_lyrics, request, progress)
        backoff = self.config.store_backoff
        retrying(
            lambda _: self.queue.complete_timing(job, self.config.owner, timing, self.clock()),
            backoff,
            self.sleep,
            job.id,
        )
        log.info("job done", extra={"job": job.id, "lines": len(timing.lines) if timing is not None else 0})

    def _guarded(self, batch: _Batch, stage: Callable[[], T]) -> T | None:
        """Run a stage on the model; a stop releases the batch, a `GenerationError` fails it with its sentence.

        Any other error fails a lone job with a generic sentence, and sends a batch of several back to
        run job by job (see `storage/queue/reaper.py`), so that it falls on the job that causes it.
        """
        try:
            return stage()
        except Stopping:
            self._abandon(batch)
        except GenerationError as error:
            self._fail_all(batch.jobs, error.user_message)
            batch.heartbeat.stop()
        except Exception:
            log.exception("backend failed", extra={"jobs": [job.id for job in batch.jobs]})
            batch.heartbeat.stop()
            if len(batch.jobs) > 1:  # each runs alone next, so the job that breaks a batch fails on its own
                self._release(batch.jobs, alone=True)
            else:
                self._fail_all(batch.jobs, GENERIC_FAILURE)
        return None

    def _guard(self, job: JobView, stage: str, step: Callable[[], T], sentence: Callable[[Exception], str]) -> T | None:
        """Run one job's step; an error fails that job alone with `sentence(error)`, and the loop goes on."""
        try:
            return step()
        except Stopping:  # the whole batch stops (its stage's `_guarded` releases it), not this job alone
            raise
        except LeaseLost:
            log.warning("lease lost; result dropped", extra={"job": job.id, "stage": stage})
        except PoolClosed:  # the engine is stopping: the job is given back, not failed
            log.info("encode abandoned on stop", extra={"job": job.id, "stage": stage})
        except Exception as error:
            log.exception("job failed", extra={"job": job.id, "stage": stage})
            self._fail(job, sentence(error))
        return None

    def _store_batch(self, batch: _Batch, results: list[GeneratedTrack]) -> None:
        """Hand every track to the encode pool at once, then store each in order as its MP3 is ready."""
        try:
            pending = [
                self._guard(job, "encoding", partial(self._encode, job, result), job_sentence)
                for job, result in zip(batch.jobs, results, strict=True)
            ]
            for job, result, encoding in zip(batch.jobs, results, pending, strict=True):
                if encoding is not None:
                    self._guard(job, "saving", partial(self._store, job, result, encoding), saving_sentence)
        finally:
            batch.heartbeat.stop()

    def _encode(self, job: JobView, result: GeneratedTrack) -> _Encoding | None:
        self._report(job, "saving", 100.0)
        if result.error is not None:  # this track alone failed; the rest of its batch is stored
            self._fail(job, result.error)
            return None
        if not _finite(result):
            self._fail(job, BROKEN_AUDIO)
            return None
        base = self.library.get(job.spec.edit.song_id) if job.spec.edit else None
        if base is not None:  # a repaint or an extend is still the same song, whatever its new caption
            result.title = base.title
        tags = audio.Tags(
            title=result.title,
            prompt=result.caption,
            lyrics=result.lyrics,
            seed=result.seed,
            song_id=job.id,
            timing=result.timing,
        )
        # int16: half the bytes to send, and the child does not clip
        encoding = _Encoding(audio.to_pcm16(result.audio), result.sample_rate, tags)
        self._start_encode(job, encoding)
        return encoding

    def _start_encode(self, job: JobView, encoding: _Encoding) -> None:
        """Hand a track to the pool under a new scratch name; an error here is the future's, retried like one."""
        try:
            encoding.temp = self.blobs.temp_path(self.blobs.track_relative(job.id, job.attempts))
            encoding.future = self.encoder.submit(encoding.pcm, encoding.rate, encoding.temp, encoding.tags)
            self.observer.encoding(encoding.future)
        except Exception as error:  # noqa: BLE001 - the future carries it to `_store`, which decides
            encoding.future = Future()
            encoding.future.set_exception(error)

    def _store(self, job: JobView, result: GeneratedTrack, encoding: _Encoding) -> None:
        """Wait for the job's MP3, commit it and complete the job, retrying storage errors with back-off.

        The scratch file is gone afterwards, whatever happened. A job that could not be recorded is
        failed, and then its committed file is deleted (nothing will point at it).
        """
        relative = self.blobs.track_relative(job.id, job.attempts)
        backoff = self.config.store_backoff
        try:
            sha256 = retrying(partial(self._write, job, encoding, relative), backoff, self.sleep, job.id)
        finally:
            scratch.discard(encoding.temp)
        latents_blob = None
        if result.latents is not None:  # kept so that a repaint or an extend keeps this song's samples
            latents = result.latents
            latents_relative = relative.replace("tracks/", "latents/", 1)
            latents_blob = retrying(
                lambda _: self.blobs.put_array(latents_relative, latents), backoff, self.sleep, job.id
            )
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
            latents_blob=latents_blob,
            timing=result.timing,
            score=result.score,
            style=result.style,
        )
        try:
            retrying(
                lambda _: self.queue.complete(job, self.config.owner, track, self.clock()), backoff, self.sleep, job.id
            )
        except LeaseLost:
            raise
        except Exception as error:
            log.exception("recording the track failed", extra={"job": job.id})
            if self._fail(job, saving_sentence(error)):
                for blob in (relative, latents_blob):
                    if blob is not None:
                        self.blobs.delete(blob)
            # Otherwise the completion may have been written before the connection broke: the file stays,
            # and the orphan sweep (storage/blobs/retention.py) deletes it once no row has named it for a day.
            return
        log.info("job done", extra={"job": job.id, "seconds": track.duration_s})

    def _write(self, job: JobView, encoding: _Encoding, relative: str, first: bool) -> str:
        """One try at the job's file: its MP3 (encoded again after a failed try) under its real name; its SHA-256."""
        if not first:
            scratch.discard(encoding.temp)
            self._start_encode(job, encoding)
        try:
            sha256 = encoding.future.result()
        except BrokenProcessPool:
            sha256 = self.encoder.retry(encoding.pcm, encoding.rate, _scratch(encoding), encoding.tags)
        self.observer.timed("storing", self.blobs.commit, _scratch(encoding), relative)
        return sha256

    def _acquire(self, semaphore: threading.Semaphore) -> bool:
        """Wait for a slot; False once a stop is asked for."""
        while not self.stop_event.is_set():
            if semaphore.acquire(timeout=self.config.poll_s):
                return True
        return False

    def _abandon(self, batch: _Batch) -> None:
        batch.heartbeat.stop()
        self._release(batch.jobs)

    def _requests(self, batch: list[JobView], heartbeat: _Heartbeat) -> tuple[list[TrackRequest], list[JobView]]:
        """Each job's request; a job whose request can't be made (a bad or vanished upload) fails alone."""
        requests, ready = [], []
        for job in batch:
            read = partial(inputs.request_of, job, self.blobs, self.library, self.config.max_source_duration_s)
            request = self._guard(job, "preparing", partial(_dropped_on_error, heartbeat, job, read), job_sentence)
            if request is not None:
                requests.append(request)
                ready.append(job)
        return requests, ready

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
                    if not self._report(target, stage, percent):
                        heartbeat.lost = True
                        raise Stopping

        return report

    def _report(self, job: JobView, stage: str, percent: float) -> bool:
        """Record a job's stage; False if the lease is lost. A database that does not answer skips a report."""
        try:
            return self.queue.report(job, self.config.owner, stage, percent, self.clock(), self.config.lease_s)
        except Exception as error:
            if not transient(error):
                raise
            log.warning("progress not recorded", extra={"job": job.id, "error": type(error).__name__})
            return True

    def _fail(self, job: JobView, message: str) -> bool:
        """Fail a job with a sentence (retried while the database does not answer); whether it was recorded.

        When it can't be recorded the job stays running without a heartbeat: its lease expires and the
        reaper requeues it.
        """
        try:
            return retrying(
                lambda _: self.queue.fail(job, self.config.owner, message, self.clock()),
                self.config.store_backoff,
                self.sleep,
                job.id,
            )
        except Exception:
            log.exception("could not record a failed job", extra={"job": job.id})
            return False

    def _fail_all(self, jobs: list[JobView], message: str) -> None:
        for job in jobs:
            self._fail(job, message)

    def _release(self, jobs: list[JobView], alone: bool = False) -> None:
        for job in jobs:
            try:
                self.queue.release(job, self.config.owner, alone)
            except Exception:  # its lease expires and the reaper requeues it
                log.exception("could not release a job", extra={"job": job.id})
        log.info("released jobs", extra={"jobs": [job.id for job in jobs]})


def _dropped_on_error(heartbeat: _Heartbeat, job: JobView, step: Callable[[], T]) -> T:
    """Run `step`; if it fails, the heartbeat lets go of the job before the failure is recorded."""
    try:
        return step()
    except BaseException:
        heartbeat.drop(job)
        raise


def _with_planned(batch: _Batch, planned: list[TrackRequest]) -> list[TrackRequest]:
    """The batch's requests with its songs' replaced by their planned ones, in order (trackless jobs unplanned)."""
    songs = iter(planned)
    pairs = zip(batch.jobs, batch.requests, strict=True)
    return [next(songs) if job.makes_track else request for job, request in pairs]


def _finite(result: GeneratedTrack) -> bool:
    return bool(np.isfinite(result.audio).all())


def _scratch(encoding: _Encoding) -> Path:
    if encoding.temp is None:  # only an encode that never started has none, and its future holds why
        raise RuntimeError("no scratch file")
    return encoding.temp
