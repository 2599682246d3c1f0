"""One job's failure is its own: storage errors are retried and then told, the loop goes on, no scratch is left."""

import asyncio
import errno
import sys
import threading
import time
from concurrent.futures import Future
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from engine.encode import EncodePool, encode_track
from engine.failures import DATABASE_DOWN, DISK_FULL, READ_ONLY, SAVE_FAILED, SOURCE_GONE, Backoff
from engine.main import build_worker
from engine.worker import WorkerConfig
from songbot.supervisor import EngineSupervisor
from storage.blobs.local import Blobs
from storage.blobs.retention import ORPHAN_GRACE, OrphanSweep
from storage.contract.types import FAILED, SUCCEEDED
from storage.db import utcnow
from tests.bot.console.test_console_e2e import env_for
from tests.engine.test_worker import Scripted, submit
from tests.engine.test_worker_pipeline import tracks_by_job
from tests.helpers import make_settings


@pytest.fixture
def worker(tmp_path):
    """The real worker (SQLite, threads for encodes) whose back-off sleeps are recorded, not slept."""
    worker = build_worker(make_settings(tmp_path, engine_max_batch=1))
    worker.generator = Scripted(tracks_by_job)
    worker.sleeps = []
    worker.sleep = worker.sleeps.append
    return worker


class Serving:
    """The pipelined loop in a thread, for as long as a test needs it."""

    def __init__(self, worker):
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, daemon=True)
        self.thread.start()

    def wait(self, job, statuses=(SUCCEEDED, FAILED), timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = self.worker.queue.get(job.id)
            if done.status in statuses:
                return done
            assert self.thread.is_alive(), "the engine loop ended"
            time.sleep(0.02)
        raise AssertionError(f"job {job.id} is still {self.worker.queue.get(job.id).status}")

    def stop(self):
        assert self.thread.is_alive(), "the engine loop ended"
        self.worker.stop()
        self.thread.join(30)


def scratch_files(worker):
    return [path.name for path in worker.blobs.root.rglob("*") if ".tmp" in path.name]


class FullDisk(EncodePool):
    """Encodes in threads; while `full`, writing a scratch file stops half way with ENOSPC, as a full disk does."""

    def __init__(self):
        super().__init__(0)
        self.full = True
        self.tries = 0

    def submit(self, pcm, rate, temp, tags):
        self.tries += 1
        if not self.full:
            return super().submit(pcm, rate, temp, tags)
        temp.write_bytes(b"\xff\xfb" * 100)  # a partial MP3 on disk, as the write got that far
        future: Future[str] = Future()
        future.set_exception(OSError(errno.ENOSPC, "No space left on device"))
        return future


def test_a_full_disk_fails_the_job_with_a_sentence_after_its_retries_and_the_loop_goes_on(worker):
    worker.encoder = disk = FullDisk()
    serving = Serving(worker)
    try:
        failed = serving.wait(submit(worker))
        assert failed.status == FAILED and failed.error == DISK_FULL
        assert disk.tries == 3 and worker.sleeps == [1.0, 2.0]  # three tries, backing off between them
        assert scratch_files(worker) == []
        disk.full = False  # the operators made room
        assert serving.wait(submit(worker)).status == SUCCEEDED
    finally:
        serving.stop()
    assert scratch_files(worker) == []


class ReadOnlyTracks(Blobs):
    """A tracks folder the engine may not write to (as root, chmod stops nothing, so it is said here)."""

    def temp_path(self, relative):
        raise OSError(errno.EROFS, "Read-only file system")


def read_only_by_chmod(worker):
    tracks = worker.blobs.root / "tracks"
    tracks.chmod(0o555)
    try:
        (tracks / "probe").mkdir()
    except PermissionError:
        return lambda: tracks.chmod(0o755)
    tracks.chmod(0o755)
    pytest.skip("root (with CAP_DAC_OVERRIDE) writes into a 0555 folder anyway; the injected one covers this")


def read_only_by_injection(worker):
    writable = worker.blobs
    worker.blobs = ReadOnlyTracks(writable.root)
    return lambda: setattr(worker, "blobs", writable)


@pytest.mark.parametrize("make_read_only", [read_only_by_chmod, read_only_by_injection])
def test_a_read_only_tracks_folder_fails_the_job_with_a_sentence_and_the_loop_goes_on(worker, make_read_only):
    make_writable = make_read_only(worker)
    serving = Serving(worker)
    try:
        failed = serving.wait(submit(worker))
        assert failed.status == FAILED and failed.error == READ_ONLY
        assert worker.sleeps == [1.0, 2.0]
        assert scratch_files(worker) == []
        make_writable()
        assert serving.wait(submit(worker)).status == SUCCEEDED
    finally:
        make_writable()
        serving.stop()


def test_a_vanished_upload_fails_its_job_and_the_next_succeeds(worker, tmp_path):
    blob = worker.blobs.put_upload(b"was audio once", ".mp3")
    worker.blobs.delete(blob)  # swept by retention, or removed by hand, while the job waited
    serving = Serving(worker)
    try:
        gone = serving.wait(submit(worker, kind="cover", source_blob=blob, strength=0.5))
        assert gone.status == FAILED and gone.error == SOURCE_GONE
        assert serving.wait(submit(worker)).status == SUCCEEDED
    finally:
        serving.stop()


class Exploding(EncodePool):
    """An encoder that raises for one job's track (found by its song id tag)."""

    def __init__(self, job_id):
        super().__init__(0)
        self.job_id = job_id

    def submit(self, pcm, rate, temp, tags):
        def encode():
            if tags.song_id == self.job_id:
                raise RuntimeError("the encoder fell over")
            return encode_track(pcm, rate, str(temp), tags)

        return self._pool().submit(encode)


def test_an_encoder_error_fails_that_job_only_without_retries(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_max_batch=3))
    worker.generator = Scripted(tracks_by_job)
    sleeps = []
    worker.sleep = sleeps.append
    jobs = [submit(worker) for _ in range(3)]
    worker.encoder = Exploding(jobs[1].id)
    assert worker.run_once()
    assert [worker.queue.get(job.id).status for job in jobs] == [SUCCEEDED, FAILED, SUCCEEDED]
    assert worker.queue.get(jobs[1].id).error == SAVE_FAILED
    assert sleeps == []  # not a storage error: trying again would not help
    assert scratch_files(worker) == []


def database_down():
    return OperationalError("UPDATE jobs", {}, Exception("server closed the connection unexpectedly"))


def flaky_completions(worker, job_id, failures):
    """`queue.complete` raises for job `job_id` the first `failures` times, as a database that went away does."""
    complete, left = worker.queue.complete, [failures]

    def flaky(job, owner, track, now):
        if job.id == job_id and left[0] > 0:
            left[0] -= 1
            raise database_down()
        return complete(job, owner, track, now)

    worker.queue.complete = flaky


def test_a_database_error_while_storing_is_retried(worker):
    job = submit(worker)
    flaky_completions(worker, job.id, failures=1)
    assert worker.run_once()
    assert worker.queue.get(job.id).status == SUCCEEDED and worker.sleeps == [1.0]


def test_a_database_that_stays_down_fails_that_job_and_the_loop_goes_on(worker):
    job = submit(worker)
    flaky_completions(worker, job.id, failures=99)
    serving = Serving(worker)
    try:
        failed = serving.wait(job)
        assert failed.status == FAILED and failed.error == DATABASE_DOWN
        assert serving.wait(submit(worker)).status == SUCCEEDED
    finally:
        serving.stop()
    relative = worker.blobs.track_relative(job.id, 1)
    assert not worker.blobs.exists(relative)  # failed for sure, so its file went too
    assert scratch_files(worker) == []


def test_a_failure_that_cannot_be_recorded_leaves_the_job_to_the_reaper_and_the_loop_goes_on(worker):
    job = submit(worker, kind="cover", source_blob="uploads/never-there.mp3", strength=0.5)

    def fail(*args):
        raise database_down()

    worker.queue.fail = fail
    assert worker.run_once()  # no exception: the job stays running, its heartbeat stopped, for the reaper
    assert worker.queue.get(job.id).status == "running"
    assert worker.sleeps == [1.0, 2.0]


def test_a_track_that_could_be_neither_recorded_nor_failed_is_swept_as_an_orphan(worker):
    job = submit(worker)
    flaky_completions(worker, job.id, failures=99)

    def fail(*args):
        raise database_down()

    worker.queue.fail = fail
    assert worker.run_once()
    relative = worker.blobs.track_relative(job.id, 1)
    # Its completion may have been written before the connection broke, so the engine keeps the file...
    assert worker.queue.get(job.id).status == "running" and worker.blobs.exists(relative)
    # ...and the sweep deletes it once no row has named it for the grace.
    sweep = OrphanSweep(worker.queue.engine, worker.blobs)
    assert sweep.sweep(utcnow()) == []
    assert sweep.sweep(utcnow() + ORPHAN_GRACE + timedelta(hours=1)) == [relative]


def test_store_backoff_comes_from_the_settings(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_store_attempts=5, engine_store_backoff_s=0.5))
    assert worker.config.store_backoff == Backoff(5, 0.5)
    assert WorkerConfig(owner="o").store_backoff.waits_s() == [1.0, 2.0]


@pytest.mark.parametrize(("fault", "sentence"), [(errno.ENOSPC, DISK_FULL), (errno.EROFS, READ_ONLY)])
async def test_the_supervised_engine_process_outlives_a_bad_disk_and_a_vanished_upload(tmp_path, fault, sentence):
    """The issue's run: a full or read-only tracks disk ended the engine 9 times in 29 s. Now: one process."""
    worker = build_worker(make_settings(tmp_path))  # the database the engine process will use
    flag = tmp_path / "disk-fault"
    flag.touch()
    env = env_for(
        tmp_path,
        DISK_FAULT_FLAG=str(flag),
        DISK_FAULT_ERRNO=str(fault),
        ENGINE_ENCODE_PROCESSES="0",
        ENGINE_STORE_BACKOFF_S="0.05",
    )
    command = [sys.executable, "-m", "tests.engine.faulty_disk_engine"]
    supervisor = EngineSupervisor(command, env, tmp_path / "engine.log")
    supervisor.start()
    try:
        failed = await wait_async(worker, submit(worker))
        pid = supervisor.process.pid
        assert failed.status == FAILED and failed.error == sentence
        assert scratch_files(worker) == []
        flag.unlink()  # the operators fixed the disk
        blob = worker.blobs.put_upload(b"was audio once", ".mp3")
        worker.blobs.delete(blob)
        gone = await wait_async(worker, submit(worker, kind="cover", source_blob=blob, strength=0.5))
        assert gone.status == FAILED and gone.error == SOURCE_GONE
        assert (await wait_async(worker, submit(worker))).status == SUCCEEDED
        assert supervisor.restarts == 0 and supervisor.process.pid == pid and supervisor.process.returncode is None
    finally:
        await supervisor.stop()
    assert supervisor.process.returncode == 0  # it stopped when asked, not before
    assert "storage error; retrying" in (tmp_path / "engine.log").read_text()


async def wait_async(worker, job, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = worker.queue.get(job.id)
        if done.status in (SUCCEEDED, FAILED):
            return done
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job.id} is still {worker.queue.get(job.id).status}")


def test_the_pipelined_loop_runs_a_broken_batch_again_job_by_job(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_max_batch=4))

    def breaks_with_the_odd_one(batch, progress):
        if any(r.job_id == jobs[1].id for r in batch):
            raise RuntimeError("index out of range")
        return tracks_by_job(batch, progress)

    worker.generator = backend = Scripted(breaks_with_the_odd_one)
    jobs = [submit(worker) for _ in range(6)]
    serving = Serving(worker)
    try:
        statuses = [serving.wait(job).status for job in jobs]
    finally:
        serving.stop()
    assert statuses == [SUCCEEDED, FAILED, SUCCEEDED, SUCCEEDED, SUCCEEDED, SUCCEEDED]
    alone = [batch for batch in backend.batches if len(batch) == 1]
    assert sorted(job for [job] in alone) == [job.id for job in jobs[:4]]  # the broken batch, one by one
