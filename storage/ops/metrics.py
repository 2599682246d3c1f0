"""Prometheus metrics: one registry per process, built by its composition root and passed in.

Names follow Prometheus' conventions: a `songbot_` prefix, the unit in the name (`_seconds`,
`_bytes`), `_total` on counters (added by the client library). Labels take a few known values
only (kind, platform, stage, state, outcome, device): never a user, a chat or a job id.

    bot process     BotMetrics     jobs submitted, jobs finished (as delivered), submit → delivered,
                                   delivery retries, 429s; QueueCollector reads the queue at scrape time
    engine process  EngineMetrics  time per stage, batch sizes, busy seconds, its jobs' outcomes;
                                   the engine adds a GPU-memory collector (engine/observer.py)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from storage.ops.overview import Overview

log = logging.getLogger("songbot.metrics")

STAGES = ("planning", "generating", "decoding", "encoding", "storing")
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
DELIVERED_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


class BotMetrics:
    """The bot process's own metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.submitted = Counter(
            "songbot_jobs_submitted", "Jobs accepted into the queue.", ["kind", "platform"], registry=r
        )
        self.finished = Counter(
            "songbot_jobs_finished",
            "Jobs whose outcome was posted to the user (outcome: succeeded, failed, cancelled, dead).",
            ["kind", "platform", "outcome"],
            registry=r,
        )
        self.submit_to_delivered = Histogram(
            "songbot_job_submit_to_delivered_seconds",
            "From a job's submission to its result being posted.",
            ["kind", "platform"],
            buckets=DELIVERED_BUCKETS,
            registry=r,
        )
        self.delivery_retries = Counter(
            "songbot_delivery_retries",
            "Posts to a platform that failed and will be tried again.",
            ["platform"],
            registry=r,
        )
        self.rate_limited = Counter(
            "songbot_platform_rate_limited",
            "Posts a platform refused as too many (HTTP 429).",
            ["platform"],
            registry=r,
        )


class EngineMetrics:
    """One engine process's metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.stage_seconds = Histogram(
            "songbot_engine_stage_seconds",
            "Time a batch spent in a stage (planning, generating, decoding, encoding, storing).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "songbot_engine_batch_size", "Jobs claimed together in one batch.", buckets=BATCH_BUCKETS, registry=r
        )
        self.busy_seconds = Counter(
            "songbot_engine_busy_seconds",
            "Seconds the device spent generating; rate() of it is the engine's busy share.",
            registry=r,
        )
        self.jobs = Counter(
            "songbot_engine_jobs",
            "Jobs this engine ended (outcome: succeeded, failed, released).",
            ["kind", "outcome"],
            registry=r,
        )
        self.info = Gauge(
            "songbot_engine_info",
            "1, labelled with the engine's device and backend.",
            ["device", "backend"],
            registry=r,
        )
        for stage in STAGES:  # every stage shows from the first scrape, at zero
            self.stage_seconds.labels(stage)


class QueueCollector(Collector):
    """Queue depth, waiting users, pending deliveries and engines up, read from the database at scrape time."""

    def __init__(self, overview: Overview, clock: Callable[[], datetime], engine_silence_s: float) -> None:
        self.overview = overview
        self.clock = clock
        self.engine_silence_s = engine_silence_s

    def collect(self) -> Iterator[Metric]:
        """One read of the database; when it fails, only `songbot_database_up 0`."""
        up = GaugeMetricFamily("songbot_database_up", "1 when the last scrape could read the database.")
        try:
            now = self.clock()
            depth = self.overview.depth(now)
            engines_up = self.overview.engines_up(now, self.engine_silence_s)
        except Exception as error:  # noqa: BLE001 - a scrape must answer: the gauge says the database is down
            log.warning("metrics could not read the database: %s", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("songbot_queue_jobs", "Jobs in the queue by state.", labels=["state"])
        for state, count in depth.jobs.items():
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily("songbot_queue_waiting_users", "Users with a job queued.", value=depth.waiting_users)
        yield GaugeMetricFamily(
            "songbot_queue_oldest_wait_seconds", "Age of the oldest queued job.", value=depth.oldest_wait_s
        )
        yield GaugeMetricFamily(
            "songbot_queue_paused", "1 while an admin has paused the queue.", value=int(depth.paused)
        )
        pending = GaugeMetricFamily(
            "songbot_deliveries_pending", "Jobs whose status or result is still to be posted.", labels=["platform"]
        )
        for platform, count in sorted(depth.pending_deliveries.items()):
            pending.add_metric([platform], count)
        yield pending
        yield GaugeMetricFamily("songbot_engines_up", "Engines heard from within their lease.", value=engines_up)

    def describe(self) -> Iterator[Metric]:
        """Nothing: describing would run the queries at registration."""
        return iter(())


def is_rate_limited(error: BaseException) -> bool:
    """Whether a platform error means "too many requests" (HTTP 429; python-telegram-bot's RetryAfter)."""
    return getattr(error, "status", None) == 429 or type(error).__name__ == "RetryAfter"
