"""The engine loop runs a `describe` job like any job: claimed fairly, its result stored in `jobs.result`, no track."""

import io

import numpy as np
import pytest
import soundfile as sf

from engine.main import build_worker
from engine.worker import Worker
from storage.contract.errors import GenerationError
from storage.contract.spec import Description, JobSpec, Plan
from storage.contract.types import DESCRIBE, FAILED, SUCCEEDED, UserRef
from storage.db import utcnow
from storage.queue.accounts import Accounts
from storage.queue.library import Library
from tests.helpers import make_settings


@pytest.fixture
def worker(tmp_path) -> Worker:
    return build_worker(make_settings(tmp_path))


def wav(seconds: float, hz: float = 220.0) -> bytes:
    t = np.arange(int(seconds * 16_000)) / 16_000
    out = io.BytesIO()
    sf.write(out, 0.3 * np.sin(2 * np.pi * hz * t), 16_000, format="WAV")
    return out.getvalue()


def submit(worker: Worker, kind: str, seconds: float, source: bytes | None = None, seed: int = 3):
    uid = Accounts(worker.queue.engine).ensure(UserRef("console", "u"), utcnow(), admin=True).id
    blob = worker.blobs.put_upload(source, ".wav") if source is not None else None
    spec = JobSpec(caption="rain" if kind != DESCRIBE else "", duration_s=seconds)
    return worker.queue.submit(uid, kind, spec, seed, utcnow(), source_blob=blob)


def test_a_describe_job_stores_its_description_and_makes_no_track(worker: Worker) -> None:
    described = submit(worker, DESCRIBE, 6.0, wav(6.0))
    song = submit(worker, "song", 10.0)
    assert worker.run_once()  # one batch: the description ends in planning, the song goes on
    assert worker.queue.get(described.id).status == SUCCEEDED
    assert worker.queue.get(song.id).status == SUCCEEDED
    library = Library(worker.queue.engine)
    assert library.get(described.id) is None and library.get(song.id) is not None
    result = Description.from_column(worker.queue.get(described.id).result)
    assert result is not None and result.backend == "sketch"
    assert result.plan.duration_s == 6.0 and result.plan.key is not None and result.plan.key.startswith("A ")
    assert Description.from_column(worker.queue.get(song.id).result) is None


def test_a_describe_job_that_fails_gets_its_sentence_and_the_batch_goes_on(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request, progress):
        raise GenerationError("This audio is too long for the song planner to describe; please use a shorter clip.")

    monkeypatch.setattr(worker.generator, "describe", refuse)
    described = submit(worker, DESCRIBE, 6.0, wav(6.0))
    song = submit(worker, "song", 10.0)
    assert worker.run_once()
    failed = worker.queue.get(described.id)
    assert failed.status == FAILED and failed.error.startswith("This audio is too long")
    assert worker.queue.get(song.id).status == SUCCEEDED


def test_a_bug_in_describe_fails_that_job_with_the_generic_sentence(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker.generator, "describe", lambda request, progress: 1 / 0)
    described = submit(worker, DESCRIBE, 6.0, wav(6.0))
    assert worker.run_once()
    failed = worker.queue.get(described.id)
    assert failed.status == FAILED and "Traceback" not in failed.error and "ZeroDivision" not in failed.error


def test_a_describe_job_whose_upload_is_not_audio_fails_with_a_sentence(worker: Worker) -> None:
    described = submit(worker, DESCRIBE, 6.0, b"\x89PNG\r\n\x1a\n" + bytes(500))
    assert worker.run_once()
    failed = worker.queue.get(described.id)
    assert failed.status == FAILED and "not audio" in failed.error


def test_a_lost_lease_keeps_the_result_out(worker: Worker) -> None:
    described = submit(worker, DESCRIBE, 6.0, wav(6.0))
    [job] = worker.queue.claim("someone-else", 1, utcnow(), 30)
    from storage.contract.errors import LeaseLost

    with pytest.raises(LeaseLost):
        worker.queue.complete_result(job, "not-the-owner", Description(plan=Plan(caption="x")), utcnow())
    worker.queue.complete_result(job, "someone-else", Description(plan=Plan(caption="x")), utcnow())
    assert worker.queue.get(described.id).status == SUCCEEDED
    assert Description.from_column(worker.queue.get(described.id).result) == Description(plan=Plan(caption="x"))


def test_a_stop_while_describing_gives_the_batch_back(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    def stopped(request, progress):
        worker.stop()
        progress(request.job_id, "listening", 10.0)  # the next progress call sees the stop
        raise AssertionError("progress should have stopped the describe")

    monkeypatch.setattr(worker.generator, "describe", stopped)
    described = submit(worker, DESCRIBE, 6.0, wav(6.0))
    song = submit(worker, "song", 10.0)
    assert worker.run_once()
    assert worker.queue.get(described.id).status == "queued" and worker.queue.get(song.id).status == "queued"
    assert Description.from_column(worker.queue.get(described.id).result) is None
