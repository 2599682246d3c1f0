"""The pipelined engine: stages overlap, results land on their own jobs, failures stay per job, crashes lose nothing."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import numpy as np
import soundfile as sf

from bot.core.delivery import DeliveryLoop
from bot.core.parser import SongRequest
from bot.core.service import SongService
from engine.encode import EncodePool
from engine.failures import SAVE_FAILED
from engine.main import build_worker
from engine.protocol import GeneratedTrack
from storage.contract.types import FAILED, SUCCEEDED, DeliveryTarget, UserRef
from storage.db import utcnow
from storage.queue.library import Library
from tests.bot.console.test_console_e2e import env_for
from tests.engine.test_worker import Scripted, submit
from tests.helpers import make_settings


def level_of(job_id):
    return 0.05 + 0.01 * (job_id % 40)


def tracks_by_job(batch, progress):
    """Each job's audio is a tone whose level names the job, so a mix-up shows in the stored MP3."""
    t = np.arange(48_000 * 2) / 48_000
    return [
        GeneratedTrack(
            job_id=r.job_id,
            seed=r.seed,
            title=f"t{r.job_id}",
            caption=r.spec.caption,
            lyrics="",
            audio=np.repeat((level_of(r.job_id) * np.sin(2 * np.pi * 440 * t))[:, None], 2, axis=1).astype(np.float32),
        )
        for r in batch
    ]


def serve(worker, until, timeout_s=60):
    """Run the pipelined loop in a thread until `until()` holds."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not until() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()


class SlowEncodes(EncodePool):
    """Threads that take a while per MP3, as a long song does."""

    def submit(self, pcm, rate, temp, tags):
        def slow():
            time.sleep(0.4)
            from engine.encode import encode_track

            return encode_track(pcm, rate, str(temp), tags)

        return self._pool().submit(slow)


def test_next_batch_generates_while_the_last_one_is_encoded(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_max_batch=2))
    worker.encoder = SlowEncodes(0)
    seen_unfinished = []

    def body(batch, progress):
        done = [worker.queue.get(j).status == SUCCEEDED for b in backend.batches[:-1] for j in b]
        seen_unfinished.append(not all(done))
        return tracks_by_job(batch, progress)

    backend = Scripted(body)
    worker.generator = backend
    jobs = [submit(worker) for _ in range(6)]
    serve(worker, lambda: all(worker.queue.get(j.id).status == SUCCEEDED for j in jobs))
    assert [j for b in backend.batches for j in b] == [j.id for j in jobs]  # claimed and generated in order
    assert any(seen_unfinished[1:])  # a later batch started before the earlier ones were stored
    assert all(worker.queue.get(j.id).status == SUCCEEDED for j in jobs)


class Planning(Scripted):
    """A backend with an LM stage: the first batch's plan ends only once a later batch is being planned."""

    plans_ahead = True

    def __init__(self, body):
        super().__init__(body)
        self.planned = []
        self.second_started = threading.Event()
        self.overlapped = False

    def plan(self, batch, progress):
        ids = [r.job_id for r in batch]
        first = not self.planned
        self.planned.append(ids)
        if first:
            self.overlapped = self.second_started.wait(10)  # plans at the same time, or the test fails
        else:
            self.second_started.set()
        return batch


def test_batches_are_planned_together_and_generated_in_claim_order(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_max_batch=2))
    backend = Planning(tracks_by_job)
    worker.generator = backend
    jobs = [submit(worker) for _ in range(6)]
    serve(worker, lambda: all(worker.queue.get(j.id).status == SUCCEEDED for j in jobs))
    assert backend.overlapped  # the second batch was claimed and planned while the first was still planning
    assert backend.planned[1] == [jobs[2].id, jobs[3].id]  # though it finished planning first ...
    assert [j for b in backend.batches for j in b] == [j.id for j in jobs]  # ... the GPU took the batches in order


def test_a_backend_without_an_lm_stage_claims_one_batch_ahead(tmp_path):
    """Claims ahead are places in line a later light user can't take: without planning to overlap, only one."""
    worker = build_worker(make_settings(tmp_path, engine_max_batch=1))
    ahead_seen = []

    def body(batch, progress):
        time.sleep(0.2)  # the planner threads have time to claim whatever they may
        current = batch[0].job_id
        ahead_seen.append(sum(1 for j in jobs if j.id > current and worker.queue.get(j.id).status == "running"))
        return tracks_by_job(batch, progress)

    worker.generator = Scripted(body)
    jobs = [submit(worker) for _ in range(5)]
    serve(worker, lambda: all(worker.queue.get(j.id).status == SUCCEEDED for j in jobs))
    assert max(ahead_seen) == 1


def test_spawned_encoders_store_each_track_on_its_job_and_a_failed_encode_fails_only_its_job(tmp_path):
    worker = build_worker(make_settings(tmp_path, engine_max_batch=3, engine_encode_processes=2))

    def one_broken(batch, progress):
        tracks = tracks_by_job(batch, progress)
        for track in tracks:
            if track.job_id == jobs[4].id:
                track.audio = np.zeros((48_000, 3), np.float32)  # LAME refuses three channels
        return tracks

    worker.generator = Scripted(one_broken)
    jobs = [submit(worker) for _ in range(6)]
    serve(worker, lambda: all(worker.queue.get(j.id).status in (SUCCEEDED, FAILED) for j in jobs), timeout_s=120)
    broken = worker.queue.get(jobs[4].id)
    assert broken.status == FAILED and broken.error == SAVE_FAILED
    library = Library(worker.queue.engine)
    for job in jobs[:4] + jobs[5:]:
        assert worker.queue.get(job.id).status == SUCCEEDED
        track = library.get(job.id)
        decoded, _ = sf.read(str(worker.blobs.path(track.blob_path)), dtype="float32")
        level = float(np.sqrt(2 * np.mean(decoded**2)))
        assert abs(level - level_of(job.id)) < 0.003, (job.id, level)
    leftovers = [p.name for p in worker.blobs.root.rglob("*.tmp.mp3")]
    assert leftovers == []


class Counting:
    """A messenger that counts what it delivers, per chat."""

    platform = "console"

    def __init__(self):
        self.sent = []

    async def show_status(self, delivery, text):
        return None

    async def send_result(self, delivery, result):
        self.sent.append(delivery.chat_id)

    async def send_error(self, delivery, text):
        raise AssertionError(text)


async def test_kill_9_mid_pipeline_loses_nothing_and_delivers_once(tmp_path):
    settings = make_settings(tmp_path, engine_lease_s=1.5)
    service = SongService.from_settings(settings)
    jobs = [
        await service.submit_song(
            UserRef("console", f"u{i}"), SongRequest("drone", duration_s=60), DeliveryTarget("console", str(i))
        )
        for i in range(8)
    ]
    engine = subprocess.Popen(
        [sys.executable, "-m", "songbot", "engine"],
        cwd=tmp_path,
        start_new_session=True,
        env=env_for(tmp_path, ENGINE_LEASE_S="1.5", ENGINE_MAX_BATCH="2", ENGINE_ENCODE_PROCESSES="2"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = [service.queue.get(j.id).status for j in jobs]
            if SUCCEEDED in states and states.count("running") >= 2:
                break
            time.sleep(0.05)
        assert SUCCEEDED in states and states.count("running") >= 2, states
    finally:
        os.killpg(engine.pid, signal.SIGKILL)  # the engine and its encode processes, mid-pipeline
        engine.wait(30)
    survivor = build_worker(settings)
    ahead = timedelta(seconds=settings.engine_lease_s + 1)
    survivor.clock = lambda: utcnow() + ahead  # the dead engine's leases expire
    while any(service.queue.get(j.id).status not in (SUCCEEDED, FAILED) for j in jobs):
        survivor.run_once()
    assert [service.queue.get(j.id).status for j in jobs] == [SUCCEEDED] * len(jobs)
    library = Library(survivor.queue.engine)
    for job in jobs:
        assert survivor.blobs.path(library.get(job.id).blob_path).stat().st_size > 100_000
    loop, messenger = DeliveryLoop(service), Counting()
    loop.register(messenger)
    for _ in range(5):
        await loop.run_once()
        await asyncio.sleep(0)
    assert sorted(messenger.sent) == sorted(str(i) for i in range(8))  # each exactly once
