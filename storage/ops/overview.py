"""What operators look at: queue depth, the engines that are up, who waits longest, the last errors.

The metrics collector (`storage.ops.metrics.QueueCollector`) and `songbot status` read the database
through this module, in read-only transactions. Users appear by display name and a short hash of
their platform id, never by the id itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from storage.contract.types import DEAD, FAILED, QUEUED, RUNNING
from storage.db import read_only
from storage.models import deliveries_table as deliveries
from storage.models import engines_table as engines
from storage.models import jobs_table as jobs
from storage.models import queue_state_table as queue_state
from storage.models import users_table as users
from storage.queue.outbox import PENDING

DEPTH_STATES = (QUEUED, RUNNING)


@dataclass(frozen=True)
class Depth:
    """The queue right now."""

    jobs: dict[str, int]  # queued and running
    waiting_users: int
    oldest_wait_s: float
    pending_deliveries: dict[str, int]  # by platform
    paused: bool


@dataclass(frozen=True)
class RunningJob:
    """A job an engine holds."""

    id: int
    stage: str
    progress: float
    started_at: datetime | None
    lease_expires_at: datetime | None


@dataclass(frozen=True)
class EngineStatus:
    """An engine that said it is up, and the batch it holds."""

    owner: str
    host: str
    device: str
    backend: str
    started_at: datetime
    seen_at: datetime
    batch: list[RunningJob]


@dataclass(frozen=True)
class Waiting:
    """The user whose oldest queued song has waited longest."""

    who: str
    waiting_s: float
    queued: int


@dataclass(frozen=True)
class ErrorLine:
    """A job that ended in an error, or a delivery that a platform refused (its time is not kept)."""

    at: datetime | None
    job_id: int
    source: str  # "job" or the platform of a delivery
    text: str


def user_label(platform: str, platform_id: str, display_name: str) -> str:
    """How a user is shown to operators: their display name and a short hash of their platform id."""
    tag = hashlib.sha256(f"{platform}:{platform_id}".encode()).hexdigest()[:8]
    name = display_name.strip() or "(no name)"
    return f"{name} ({platform} #{tag})"


class Overview:
    """Read-only queries for `songbot status` and the metrics."""

    def __init__(self, db: Engine) -> None:
        self.reader = read_only(db)

    def depth(self, now: datetime) -> Depth:
        """Jobs queued and running, users waiting, the longest wait, deliveries not yet posted."""
        with self.reader.begin() as conn:
            by_state: dict[str, int] = dict(
                conn.execute(
                    select(jobs.c.status, func.count()).where(jobs.c.status.in_(DEPTH_STATES)).group_by(jobs.c.status)
                ).all()
            )
            waiting, oldest = conn.execute(
                select(func.count(func.distinct(jobs.c.user_id)), func.min(jobs.c.created_at)).where(
                    jobs.c.status == QUEUED
                )
            ).one()
            pending: dict[str, int] = dict(
                conn.execute(
                    select(deliveries.c.platform, func.count())
                    .where(deliveries.c.state == PENDING)
                    .group_by(deliveries.c.platform)
                ).all()
            )
            paused = bool(conn.execute(select(queue_state.c.paused)).scalar_one())
        return Depth(
            jobs={state: int(by_state.get(state, 0)) for state in DEPTH_STATES},
            waiting_users=int(waiting),
            oldest_wait_s=max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
            pending_deliveries={str(platform): int(count) for platform, count in pending.items()},
            paused=paused,
        )

    def engines(self) -> list[EngineStatus]:
        """Every engine row, newest heartbeat first, with the jobs it holds."""
        with self.reader.begin() as conn:
            rows = conn.execute(select(engines).order_by(engines.c.seen_at.desc())).all()
            held = conn.execute(
                select(
                    jobs.c.id,
                    jobs.c.lease_owner,
                    jobs.c.stage,
                    jobs.c.progress,
                    jobs.c.started_at,
                    jobs.c.lease_expires_at,
                )
                .where(jobs.c.status == RUNNING)
                .order_by(jobs.c.id)
            ).all()
        batches: dict[str, list[RunningJob]] = {}
        for job in held:
            batches.setdefault(job.lease_owner, []).append(
                RunningJob(job.id, job.stage, job.progress, job.started_at, job.lease_expires_at)
            )
        return [
            EngineStatus(
                row.owner, row.host, row.device, row.backend, row.started_at, row.seen_at, batches.get(row.owner, [])
            )
            for row in rows
        ]

    def engines_up(self, now: datetime, within_s: float) -> int:
        """Engines heard from in the last `within_s` seconds."""
        return sum(1 for engine in self.engines() if (now - engine.seen_at).total_seconds() <= within_s)

    def slowest_waiting(self, now: datetime) -> Waiting | None:
        """The user whose oldest queued job is the oldest of all, or None when nobody waits."""
        with self.reader.begin() as conn:
            row = conn.execute(
                select(
                    users.c.platform,
                    users.c.platform_id,
                    users.c.display_name,
                    func.min(jobs.c.created_at),
                    func.count(),
                )
                .join(users, users.c.id == jobs.c.user_id)
                .where(jobs.c.status == QUEUED)
                .group_by(users.c.id, users.c.platform, users.c.platform_id, users.c.display_name)
                .order_by(func.min(jobs.c.created_at))
                .limit(1)
            ).one_or_none()
        if row is None:
            return None
        platform, platform_id, name, oldest, count = row
        return Waiting(user_label(platform, platform_id, name), (now - oldest).total_seconds(), int(count))

    def last_errors(self, limit: int = 5) -> list[ErrorLine]:
        """The latest failed or dead jobs and given-up deliveries, newest first (texts as stored)."""
        with self.reader.begin() as conn:
            failed = conn.execute(
                select(jobs.c.id, jobs.c.finished_at, jobs.c.error)
                .where(jobs.c.status.in_((FAILED, DEAD)))
                .order_by(jobs.c.id.desc())
                .limit(limit)
            ).all()
            refused = conn.execute(
                select(deliveries.c.job_id, deliveries.c.platform, deliveries.c.error)
                .where(deliveries.c.error.is_not(None))
                .order_by(deliveries.c.id.desc())
                .limit(limit)
            ).all()
        lines = [ErrorLine(row.finished_at, row.id, "job", row.error or "") for row in failed]
        lines += [ErrorLine(None, row.job_id, row.platform, row.error or "") for row in refused]
        return sorted(lines, key=lambda line: line.job_id, reverse=True)[:limit]
