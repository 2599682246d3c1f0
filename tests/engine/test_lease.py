"""Leases run from the claim: a decode that outlasts the lease is work the engine is doing, not a death."""

import io
import threading
from datetime import timedelta

import numpy as np
import soundfile as sf

from engine import inputs
from engine.lease import Heartbeat
from engine.main import build_worker
from storage.contract.spec import JobSpec
from storage.contract.types import RUNNING, SUCCEEDED, UserRef
from storage.db import utcnow
from storage.queue.accounts import Accounts
from tests.helpers import make_settings

LEASE_S = 0.3
WAIT_S = 60  # only a failing test waits this long


def wav_bytes(seconds: float = 6.0) -> bytes:
    t = np.arange(int(seconds * 48_000)) / 48_000
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48_000, format="WAV")
    return buffer.getvalue()


def test_a_cover_whose_decode_outlasts_the_lease_is_not_reaped(tmp_path, monkeypatch):
    worker = build_worker(make_settings(tmp_path, engine_lease_s=LEASE_S))
    now = [utcnow()]
    worker.clock = lambda: now[0]  # time moves only when the test moves it
    uid = Accounts(worker.queue.engine).ensure(UserRef("console", "u"), now[0], admin=True).id
    blob = worker.blobs.put_upload(wav_bytes(), ".wav")
    spec = JobSpec(caption="", duration_s=6.0, strength=0.5)
    job = worker.queue.submit(uid, "cover", spec, 1, now[0], source_blob=blob)

    decoding, decoded = threading.Event(), threading.Event()
    real_decode = inputs.decoding.decode

    def slow_decode(data, max_duration_s):
        decoding.set()
        assert decoded.wait(WAIT_S)
        return real_decode(data, max_duration_s)

    monkeypatch.setattr(inputs.decoding, "decode", slow_decode)
    late = {"at": None}
    renewed_late = threading.Event()
    real_renew = worker.queue.renew

    def renew(job_view, owner, at, lease_s):
        renewed = real_renew(job_view, owner, at, lease_s)
        if renewed and late["at"] is not None and at >= late["at"]:
            renewed_late.set()
        return renewed

    worker.queue.renew = renew
    running = threading.Thread(target=worker.run_once)
    running.start()
    try:
        assert decoding.wait(WAIT_S)
        now[0] += timedelta(seconds=LEASE_S * 20)  # the decode has taken twenty leases so far
        late["at"] = now[0]
        assert renewed_late.wait(WAIT_S), "no lease renewal while the upload was being decoded"
        assert worker.queue.reap(now[0]) == []
        held = worker.queue.get(job.id)
        assert held.status == RUNNING and held.lease_owner == worker.config.owner
    finally:
        decoded.set()
        running.join(WAIT_S)
    done = worker.queue.get(job.id)
    assert done.status == SUCCEEDED and done.attempts == 1


class CountingQueue:
    """A queue whose renewals are recorded; every renewal succeeds."""

    def __init__(self):
        self.renewed = []
        self.beat = threading.Event()

    def renew(self, job, owner, now, lease_s):
        self.renewed.append(job.id)
        self.beat.set()
        return True


class Job:
    def __init__(self, job_id):
        self.id = job_id


def test_a_dropped_job_is_no_longer_renewed_and_is_not_a_lost_lease():
    queue = CountingQueue()
    heartbeat = Heartbeat(queue, "me", 0.03, utcnow, [Job(1), Job(2)])
    heartbeat.start()
    try:
        assert queue.beat.wait(WAIT_S)
        heartbeat.drop(Job(1))  # returns once no beat is in progress
        queue.renewed.clear()
        queue.beat.clear()
        assert queue.beat.wait(WAIT_S)
    finally:
        heartbeat.stop()
    assert set(queue.renewed) == {2} and not heartbeat.lost
