"""The engine's metric hooks: stage times (generating vs decoding), busy time, outcomes as the queue records them."""

from datetime import datetime

import pytest

from engine.observer import CountingQueue, EngineObserver
from storage.accounts import Accounts
from storage.metrics import EngineMetrics
from storage.spec import JobSpec
from storage.types import NewTrack, UserRef

NOW = datetime(2026, 11, 28, 12, 0, 0)


def count(metrics, stage):
    return metrics.registry.get_sample_value("songbot_engine_stage_seconds_count", {"stage": stage})


def test_the_gpu_stage_splits_at_the_first_decoding_report():
    observer = EngineObserver()
    seen = []

    def generate(requests, progress):
        progress(None, "generating", 50.0)
        progress(None, "decoding", 0.0)
        progress(None, "decoding", 100.0)
        return requests

    assert observer.generating(generate, ["r"], lambda *report: seen.append(report)) == ["r"]
    assert len(seen) == 3  # every report still reaches the worker's callback
    assert count(observer.metrics, "generating") == 1 and count(observer.metrics, "decoding") == 1
    assert observer.metrics.registry.get_sample_value("songbot_engine_busy_seconds_total") > 0


def test_a_backend_without_a_decoding_stage_counts_generating_only():
    observer = EngineObserver()
    observer.generating(lambda requests, progress: progress(None, "generating", 100.0), [], lambda *_: None)
    assert count(observer.metrics, "generating") == 1 and count(observer.metrics, "decoding") == 0


def test_a_failed_stage_is_still_timed():
    observer = EngineObserver()

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        observer.timed("planning", broken)
    assert count(observer.metrics, "planning") == 1


def test_the_queue_counts_what_it_records(db):
    metrics = EngineMetrics()
    queue = CountingQueue(db, None, metrics)
    user = Accounts(db).ensure(UserRef("console", "ann", "Ann"), NOW).id
    for seed in (1, 2, 3):
        queue.submit(user, "song", JobSpec(caption="rain", duration_s=10), seed, NOW)
    first, second, third = queue.claim("me", 3, NOW, 30)
    queue.fail(first, "me", "no", NOW)
    queue.fail(first, "me", "no", NOW)  # already failed: not counted twice
    queue.release(second, "me")
    track = NewTrack("tracks/x.mp3", 10, 3, "0" * 64, "Rain", "rain", "", {}, {})
    queue.complete(third, "me", track, NOW)

    def jobs(outcome):
        return metrics.registry.get_sample_value("songbot_engine_jobs_total", {"kind": "song", "outcome": outcome})

    assert (jobs("failed"), jobs("released"), jobs("succeeded")) == (1, 1, 1)
