"""Engine presence: heartbeats into the engines table, readiness, and an owner id that names host and device."""

import socket
import time
from datetime import datetime, timedelta

from engine.main import build_worker, device_of, owner_id
from engine.presence import Presence
from storage.ops.overview import Overview
from storage.queue.engines import EngineIdentity, EngineRoster
from tests.helpers import make_settings

NOW = datetime(2026, 11, 28, 12, 0, 0)
ME = EngineIdentity("gpu-a:cuda:1:42:abcdef", "gpu-a", "cuda:1", "acestep", 42)


def test_beats_while_serving_and_leaves_on_stop(db):
    serving = [True]
    presence = Presence(EngineRoster(db), ME, every_s=0.02, serving=lambda: serving[0], clock=lambda: NOW)
    assert presence.ready() == "engine heartbeat late"  # not started yet
    presence.start()
    deadline = time.monotonic() + 10
    while presence.ready() is not None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [row] = Overview(db).engines()
    assert (row.owner, row.host, row.device, row.backend) == (ME.owner, "gpu-a", "cuda:1", "acestep")
    serving[0] = False
    assert presence.ready() == "engine loop not running"
    presence.stop()
    assert Overview(db).engines() == []


def test_a_silent_engine_is_not_counted_as_up_and_is_pruned_after_a_day(db):
    roster = EngineRoster(db)
    roster.beat(ME, NOW)
    roster.beat(EngineIdentity("gpu-b:cuda:0:7:000000", "gpu-b", "cuda:0", "acestep", 7), NOW - timedelta(minutes=5))
    overview = Overview(db)
    assert overview.engines_up(NOW + timedelta(seconds=10), within_s=30) == 1
    assert roster.prune(NOW - timedelta(days=1)) == 0
    assert roster.prune(NOW) == 1
    assert [engine.owner for engine in overview.engines()] == [ME.owner]


def test_a_second_beat_keeps_the_start_time(db):
    roster = EngineRoster(db)
    roster.beat(ME, NOW)
    roster.beat(ME, NOW + timedelta(seconds=10))
    [row] = Overview(db).engines()
    assert row.started_at == NOW and row.seen_at == NOW + timedelta(seconds=10)


def test_the_owner_id_names_host_and_device(tmp_path):
    assert owner_id("gpu-a", "cuda:1", 42).startswith("gpu-a:cuda:1:42:")
    settings = make_settings(tmp_path, engine_device="cuda:3")
    worker = build_worker(settings)
    assert worker.config.owner.startswith(f"{socket.gethostname()}:cuda:3:")
    assert device_of(make_settings(tmp_path), worker.generator) == "cpu"  # the sketch backend under auto
