"""The monitoring ports over loopback: metrics move while jobs run (sketch backend); /readyz follows the database."""

import asyncio
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.core.delivery import DeliveryLoop
from bot.core.parser import SongRequest
from bot.core.service import SongService
from bot.runner import start_bot_monitor
from engine.main import build_worker
from storage.contract.types import DeliveryTarget, UserRef
from storage.db import make_engine
from storage.ops.metrics import EngineMetrics
from storage.ops.monitor import Monitor, database_check
from tests.bot.core.test_delivery import Recorder
from tests.bot.telegram.test_telegram_restart import HeldGenerator
from tests.helpers import make_settings

ANN = UserRef("fake", "1", "Ann")


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels."""
    status, text = get(port, "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def test_counters_and_histograms_move_while_jobs_run(tmp_path):
    settings = make_settings(tmp_path, bot_metrics_port=0)
    service = SongService.from_settings(settings)
    bot = start_bot_monitor(settings, service)
    assert bot.server.server_address[0] == "127.0.0.1"  # loopback unless METRICS_HOST says otherwise
    engine_metrics = EngineMetrics()
    worker = build_worker(settings, metrics=engine_metrics)
    release = threading.Event()
    worker.generator = HeldGenerator(worker.generator, release)
    engine = Monitor(engine_metrics.registry, [], "127.0.0.1", 0).start()
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        before = scrape(bot.port)
        assert value(before, "songbot_jobs_submitted_total", kind="song", platform="fake") == 0
        for _ in range(2):
            await service.submit_song(ANN, SongRequest("rain", duration_s=10), DeliveryTarget("fake", "chat"))
        queued = scrape(bot.port)
        assert value(queued, "songbot_jobs_submitted_total", kind="song", platform="fake") == 2
        assert value(queued, "songbot_queue_jobs", state="queued") == 2
        assert value(queued, "songbot_queue_waiting_users") == 1
        assert value(queued, "songbot_deliveries_pending", platform="fake") == 2

        thread.start()
        await asyncio.to_thread(wait_for, lambda: value(scrape(bot.port), "songbot_queue_jobs", state="running") >= 1)
        running = scrape(engine.port)
        assert value(running, "songbot_engine_batch_size_count") >= 1
        assert value(running, "songbot_engine_stage_seconds_count", stage="generating") == 0

        release.set()
        loop, recorder = DeliveryLoop(service), Recorder()
        loop.register(recorder)
        deadline = time.monotonic() + 60
        while sum(call[0] == "result" for call in recorder.calls) < 2:
            assert time.monotonic() < deadline
            await loop.run_once()
            await asyncio.sleep(0.05)

        done, made = scrape(bot.port), scrape(engine.port)
        assert value(done, "songbot_jobs_finished_total", kind="song", platform="fake", outcome="succeeded") == 2
        assert value(done, "songbot_job_submit_to_delivered_seconds_count", kind="song", platform="fake") == 2
        assert (
            value(done, "songbot_queue_jobs", state="queued") == value(done, "songbot_queue_jobs", state="running") == 0
        )
        assert value(done, "songbot_deliveries_pending", platform="fake") == 0
        for stage in ("generating", "encoding", "storing"):
            assert value(made, "songbot_engine_stage_seconds_count", stage=stage) >= 1, stage
        assert value(made, "songbot_engine_stage_seconds_sum", stage="generating") > 0
        assert value(made, "songbot_engine_busy_seconds_total") > 0
        assert value(made, "songbot_engine_jobs_total", kind="song", outcome="succeeded") == 2
    finally:
        release.set()
        worker.stop()
        if thread.is_alive():
            thread.join(timeout=30)
        engine.stop()
        bot.stop()


def test_health_and_readiness_follow_the_database(tmp_path):
    live = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    # A PostgreSQL URL whose port nothing listens on: the database is down.
    down = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2})
    up_monitor = Monitor(EngineMetrics().registry, [database_check(live)], "127.0.0.1", 0).start()
    down_monitor = Monitor(EngineMetrics().registry, [database_check(down)], "127.0.0.1", 0).start()
    try:
        assert get(up_monitor.port, "/healthz") == (200, "ok\n")
        assert get(up_monitor.port, "/readyz") == (200, "ready\n")
        assert get(down_monitor.port, "/healthz") == (200, "ok\n")  # alive, just not ready
        status, reason = get(down_monitor.port, "/readyz")
        assert status == 503 and reason.startswith("database unreachable")
        assert get(up_monitor.port, "/nothing")[0] == 404
    finally:
        up_monitor.stop()
        down_monitor.stop()


def test_the_queue_gauges_say_when_the_database_is_down(tmp_path):
    from storage.ops.metrics import QueueCollector
    from storage.ops.overview import Overview

    registry = EngineMetrics().registry
    down = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2})
    registry.register(QueueCollector(Overview(down), lambda: None, 10.0))
    monitor = Monitor(registry, [], "127.0.0.1", 0).start()
    try:
        samples = scrape(monitor.port)
        assert value(samples, "songbot_database_up") == 0
        assert not any(name == "songbot_queue_jobs" for name, _ in samples)
    finally:
        monitor.stop()


def test_no_port_no_monitor(tmp_path):
    settings = make_settings(tmp_path)
    assert start_bot_monitor(settings, SongService.from_settings(settings)) is None


def test_a_taken_port_is_one_sentence(tmp_path):
    from storage.contract.errors import StartupError
    from storage.ops.monitor import start_monitor

    taken = Monitor(EngineMetrics().registry, [], "127.0.0.1", 0).start()
    try:
        with pytest.raises(StartupError, match=f"Could not open the metrics port 127.0.0.1:{taken.port}"):
            start_monitor(EngineMetrics().registry, [], "127.0.0.1", taken.port)
    finally:
        taken.stop()
