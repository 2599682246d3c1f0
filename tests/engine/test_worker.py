"""The engine loop over a real SQLite queue, with small fake backends where a test needs one."""

import io
import threading
import time
from datetime import timedelta

import numpy as np
import pytest
import soundfile as sf

from engine.main import build_worker
from engine.protocol import GeneratedTrack
from engine.worker import Worker, WorkerConfig
from storage.blobs.local import Blobs
from storage.contract.errors import GenerationError
from storage.contract.results import ModelInfo
from storage.contract.spec import JobSpec
from storage.contract.types import DEAD, FAILED, QUEUED, SUCCEEDED, UserRef
from storage.db import utcnow
from storage.media import audio
from storage.queue.accounts import Accounts
from storage.queue.library import Library
from tests.helpers import make_settings
from tests.storage.queue.test_reaper import attempts_left


@pytest.fixture
def worker(tmp_path):
    return build_worker(make_settings(tmp_path))


def submit(worker, duration=10.0, seed=3, **spec):
    uid = Accounts(worker.queue.engine).ensure(UserRef("console", "u"), utcnow(), admin=True).id
    kind, source_blob = spec.pop("kind", "song"), spec.pop("source_blob", None)
    return worker.queue.submit(
        uid, kind, JobSpec(caption="rain", duration_s=duration, **spec), seed, utcnow(), source_blob=source_blob
    )


class Scripted:
    """A backend that runs a given function instead of making music."""

    name = "scripted"
    max_batch = 4
    plans_ahead = False

    def __init__(self, body):
        self.body = body
        self.batches = []

    def generate(self, batch, progress):
        self.batches.append([r.job_id for r in batch])
        return self.body(batch, progress)

    def plan(self, batch, progress):
        return batch


def silence_tracks(batch, progress):
    for request in batch:
        progress(request.job_id, "generating", 50.0)
    return [
        GeneratedTrack(
            job_id=r.job_id,
            audio=np.full((48_000 * 2, 2), 0.1, np.float32),
            seed=r.seed,
            title="t",
            caption=r.spec.caption,
            lyrics="",
        )
        for r in batch
    ]


def test_sketch_jobs_become_tagged_mp3s(worker):
    job = submit(worker, duration=10.0, seed=77, bpm=100, key="D minor")
    assert worker.run_once()
    done = worker.queue.get(job.id)
    assert done.status == SUCCEEDED and done.progress == 100.0
    track = Library(worker.queue.engine).get(job.id)
    path = worker.blobs.path(track.blob_path)
    decoded, rate = sf.read(str(path), always_2d=True)
    assert rate == 48_000 and decoded.shape == (480_000, 2)
    assert track.meta.bpm == 100 and track.meta.key == "D minor" and track.seed == 77
    assert "not ACE-Step" in track.notice
    tags = audio.read_tags(path)
    assert tags["seed"] == "77" and tags["song_id"] == str(job.id) and tags["prompt"] == "rain"
    assert not worker.run_once()


def test_claims_batches_up_to_the_limit(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_max_batch=2))
    backend = Scripted(silence_tracks)
    worker.generator = backend
    jobs = [submit(worker) for _ in range(3)]
    worker.run_once()
    worker.run_once()
    assert backend.batches == [[jobs[0].id, jobs[1].id], [jobs[2].id]]


def test_generation_error_fails_the_batch_with_its_sentence(worker):
    def broken(batch, progress):
        raise GenerationError("The model produced silence; try another seed.")

    worker.generator = Scripted(broken)
    job = submit(worker)
    worker.run_once()
    failed = worker.queue.get(job.id)
    assert failed.status == FAILED and failed.error == "The model produced silence; try another seed."


def test_unexpected_error_fails_with_a_generic_sentence(worker):
    worker.generator = Scripted(lambda batch, progress: 1 / 0)
    job = submit(worker)
    worker.run_once()
    assert "Something went wrong" in worker.queue.get(job.id).error


def test_nan_audio_fails_the_job(worker):
    def nan(batch, progress):
        tracks = silence_tracks(batch, progress)
        tracks[0].audio[10] = np.nan
        return tracks

    worker.generator = Scripted(nan)
    job = submit(worker)
    worker.run_once()
    assert worker.queue.get(job.id).status == FAILED
    assert "broken audio" in worker.queue.get(job.id).error


def test_bad_cover_source_fails_only_that_job(worker):
    blob = worker.blobs.put_upload(b"not audio at all" * 10, ".mp3")
    bad = submit(worker, kind="cover", source_blob=blob, strength=0.5)
    good = submit(worker)
    worker.run_once()
    assert worker.queue.get(bad.id).status == FAILED
    assert worker.queue.get(good.id).status == SUCCEEDED


def test_cover_source_reaches_the_backend(worker):
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(np.linspace(0, 3000, 16000 * 12)), 16000, format="WAV")
    blob = worker.blobs.put_upload(buffer.getvalue(), ".wav")
    seen = {}

    def capture(batch, progress):
        seen["source"] = batch[0].source_audio
        seen["strength"] = batch[0].spec.strength
        return silence_tracks(batch, progress)

    worker.generator = Scripted(capture)
    submit(worker, kind="cover", source_blob=blob, strength=0.8)
    worker.run_once()
    assert seen["source"].shape == (48_000 * 12, 2) and seen["strength"] == 0.8


def test_stop_during_generation_releases_the_job(worker):
    started = threading.Event()

    def slow(batch, progress):
        started.set()
        for _ in range(200):
            progress(None, "generating", 10.0)
            time.sleep(0.02)
        return silence_tracks(batch, progress)

    worker.generator = Scripted(slow)
    job = submit(worker)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    started.wait(5)
    worker.stop()
    thread.join(10)
    released = worker.queue.get(job.id)
    assert released.status == QUEUED and released.attempts == 0


def test_lost_lease_abandons_the_batch(tmp_path, monkeypatch):
    settings = make_settings(tmp_path, engine_lease_s=0.3)
    worker = build_worker(settings)

    def later():  # a second on: the worker's lease has expired by then
        return utcnow() + timedelta(seconds=1)

    other = Worker(
        worker.queue,
        Blobs(settings.blob_dir),
        Scripted(silence_tracks),
        WorkerConfig(owner="other", lease_s=30),
        clock=later,
    )

    def stalls(batch, progress):
        worker.queue.reap(later())  # longer than the lease, and the heartbeat cannot help: the job is stolen
        other.run_once()
        progress(None, "generating", 90.0)
        return silence_tracks(batch, progress)

    # Heartbeats every lease/3 would keep the lease; stop them to model a hung process.
    worker.config = WorkerConfig(owner=worker.config.owner, lease_s=0.3)
    worker.generator = Scripted(stalls)
    job = submit(worker)
    import engine.worker as module

    monkeypatch.setattr(module._Heartbeat, "_run", lambda self: None)
    worker.run_once()
    done = worker.queue.get(job.id)
    assert done.status == SUCCEEDED and done.attempts == 2
    assert Library(worker.queue.engine).get(job.id).model == ModelInfo()


def test_reaper_marks_a_repeatedly_crashing_job_dead(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_max_attempts=1))
    job = submit(worker)
    worker.queue.claim("crashed-engine", 1, utcnow(), lease_s=30)
    worker.clock = lambda: utcnow() + timedelta(seconds=31)  # the crashed engine's lease has expired
    worker.run_once()
    assert worker.queue.get(job.id).status == DEAD


def test_an_error_that_breaks_a_batch_falls_on_the_job_that_causes_it(worker):
    """The batch is run again one job at a time: only the job whose request breaks the backend fails."""

    def breaks_with_the_odd_one(batch, progress):
        if any(r.job_id == odd.id for r in batch):
            raise RuntimeError("index out of range")
        return silence_tracks(batch, progress)

    backend = Scripted(breaks_with_the_odd_one)
    worker.generator = backend
    first, odd, last = (submit(worker) for _ in range(3))
    while worker.run_once():
        pass
    assert [worker.queue.get(job.id).status for job in (first, odd, last)] == [SUCCEEDED, FAILED, SUCCEEDED]
    assert "Something went wrong" in worker.queue.get(odd.id).error
    assert backend.batches == [[first.id, odd.id, last.id], [first.id], [odd.id], [last.id]]
    assert [worker.queue.get(job.id).attempts for job in (first, odd, last)] == [1, 1, 1]


def test_after_an_engine_died_with_a_batch_its_jobs_run_alone_and_none_is_counted(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_max_batch=2))
    backend = Scripted(silence_tracks)
    worker.generator = backend
    jobs = [submit(worker) for _ in range(3)]
    worker.queue.claim("killed-engine", 2, utcnow(), lease_s=30)
    worker.queue.claim("killed-engine", 2, utcnow(), lease_s=30)  # the batch claimed ahead
    worker.clock = lambda: utcnow() + timedelta(seconds=31)  # its leases have expired
    while worker.run_once():
        pass
    assert [worker.queue.get(job.id).status for job in jobs] == [SUCCEEDED] * 3
    left = [attempts_left(worker.queue.engine, job.id) for job in jobs]
    assert left == [2, 2, 2]  # as if each had run once: the death counted against none
    assert backend.batches == [[job.id] for job in jobs]
