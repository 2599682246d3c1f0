"""The engine's metric hooks: stage times (generating vs decoding), busy time, outcomes as the queue records them."""

from datetime import datetime

import pytest

from engine.observer import CountingQueue, EngineObserver
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import JobSpec
from storage.contract.types import NewTrack, UserRef
from storage.ops.metrics import EngineMetrics
from storage.queue.accounts import Accounts

NOW = datetime(2026, 11, 28, 12, 0, 0)


def count(metrics, stage):
    return metrics.registry.get_sample_value("songbot_engine_stage_seconds_count", {"stage": stage})


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def total(metrics, stage):
    return metrics.registry.get_sample_value("songbot_engine_stage_seconds_sum", {"stage": stage})


def test_the_gpu_stage_splits_where_the_dit_ends_and_the_vae_begins():
    clock = Clock()
    observer = EngineObserver(clock=clock)
    seen = []

    def generate(requests, progress):  # as the acestep pipeline reports: steps, then decoding at its end
        clock.now += 3.0
        progress(None, "generating", 50.0)
        clock.now += 3.0
        progress(None, "generating", 100.0)
        clock.now += 2.0
        progress(None, "decoding", 100.0)
        clock.now += 0.5
        return requests

    assert observer.generating(generate, ["r"], lambda *report: seen.append(report)) == ["r"]
    assert len(seen) == 3  # every report still reaches the worker's callback
    assert count(observer.metrics, "generating") == 1 and count(observer.metrics, "decoding") == 1
    assert (total(observer.metrics, "generating"), total(observer.metrics, "decoding")) == (6.0, 2.5)
    assert observer.metrics.registry.get_sample_value("songbot_engine_busy_seconds_total") == 8.5


def test_a_decoding_report_without_a_finished_step_splits_there():
    clock = Clock()
    observer = EngineObserver(clock=clock)

    def generate(requests, progress):
        clock.now += 1.0
        progress(None, "decoding", 0.0)
        clock.now += 4.0

    observer.generating(generate, [], lambda *_: None)
    assert (total(observer.metrics, "generating"), total(observer.metrics, "decoding")) == (1.0, 4.0)


def test_a_backend_without_a_decoding_stage_counts_generating_only():
    clock = Clock()
    observer = EngineObserver(clock=clock)

    def generate(requests, progress):  # the sketch: steps to 100%, a little work after, no decoding
        clock.now += 2.0
        progress(None, "generating", 100.0)
        clock.now += 1.0

    observer.generating(generate, [], lambda *_: None)
    assert count(observer.metrics, "generating") == 1 and count(observer.metrics, "decoding") == 0
    assert total(observer.metrics, "generating") == 3.0


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
    track = NewTrack("tracks/x.mp3", 10, 3, "0" * 64, "Rain", "rain", "", TrackMeta(), ModelInfo())
    queue.complete(third, "me", track, NOW)

    def jobs(outcome):
        return metrics.registry.get_sample_value("songbot_engine_jobs_total", {"kind": "song", "outcome": outcome})

    assert (jobs("failed"), jobs("released"), jobs("succeeded")) == (1, 1, 1)
