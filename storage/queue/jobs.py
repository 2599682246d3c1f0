"""The job queue: every statement that moves a job through its states lives here.

    submit ─→ queued ──claim──→ running ──complete──→ succeeded
                ↑  │             │  │ └──fail──→ failed
                │  └─cancel─→ cancelled
                └──reap (lease expired)──┘  └─reap after max attempts─→ dead

Each write runs in one transaction (`BEGIN IMMEDIATE` on SQLite, see `db.py`). The engine
owns a running job through its lease (`lease_owner`, `lease_expires_at`, `attempts`); every
write by a worker is fenced on all three, so a worker that lost its lease cannot publish.
Fairness tags come from `fairness.py`; this module only stores them. Which deaths count against
a job, and the suspects that are claimed alone, is `reaper.py`'s.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, and_, bindparam, false, func, or_, select, true, update
from sqlalchemy.engine import Connection

from storage.contract.errors import LeaseLost, LimitError, NotFound, UserError
from storage.contract.results import LyricTiming, Record, TimingResult
from storage.contract.spec import JobSpec, check_seed, check_takes
from storage.contract.text import counted
from storage.contract.types import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    TRACKLESS_KINDS,
    DeliveryTarget,
    JobView,
    NewTrack,
    QueueLimits,
)
from storage.db import read_only
from storage.models import deliveries_table, jobs_table, queue_state_table, tracks_table, users_table
from storage.ops.scrub import Scrubber
from storage.queue import best, fairness, reaper
from storage.queue.rows import delivery_values, job_view, queued_job_values, track_values

jobs = jobs_table
users = users_table
tracks = tracks_table
deliveries = deliveries_table
queue_state = queue_state_table

DEAD_MESSAGE = reaper.DEAD_MESSAGE
PAUSED_MESSAGE = "The bot is paused by its operators right now; please try again a little later."


def _claim_statement() -> Any:
    """The claim, built once: the engine runs it in a tight loop.

    The smallest start tags first. SKIP LOCKED (PostgreSQL) lets several engines claim at once
    without waiting on each other; SQLite serialises writers with BEGIN IMMEDIATE and renders no
    FOR UPDATE at all. MATERIALIZED makes PostgreSQL run the LIMIT once: as a plain IN-subquery
    it may be re-run per row and hand out more than n jobs. Suspects are claimed alone (`CLAIM_ALONE`).
    """
    candidates = (
        select(jobs.c.id)
        .where(jobs.c.status == QUEUED, jobs.c.run_after <= bindparam("now"), jobs.c.suspect == false())
        .order_by(jobs.c.vstart, jobs.c.id)
        .limit(bindparam("n"))
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    return (
        update(jobs)
        .where(jobs.c.id.in_(select(candidates.c.id)), jobs.c.status == QUEUED)
        .values(**_CLAIMED)
        .returning(*jobs.c)
    )


_CLAIMED: dict[str, Any] = {
    "status": RUNNING,
    "lease_owner": bindparam("owner"),
    "attempts": jobs.c.attempts + 1,
    "started_at": bindparam("now"),
    "lease_expires_at": bindparam("expires"),
    "stage": "starting",
    "progress": 0.0,
}
CLAIM = _claim_statement()
# A suspect at the head of the line, alone (see reaper.py); a second engine that read the same head
# finds it no longer queued.
CLAIM_ALONE = (
    update(jobs)
    .where(jobs.c.id == bindparam("suspect_id"), jobs.c.status == QUEUED)
    .values(**_CLAIMED)
    .returning(*jobs.c)
)
CLOCK = select(queue_state.c.vtime, queue_state.c.paused)

# PostgreSQL advisory lock key held by a submit while it checks the whole queue's cap (SQLite's
# BEGIN IMMEDIATE already serialises writers). Any constant unique to songbot will do.
QUEUE_CAP_LOCK = 0x50_4E_47_42_4F_54


class Queue:
    """All job-queue operations, on one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, limits: QueueLimits | None = None, scrub: Scrubber | None = None) -> None:
        self.engine = engine
        self.reader = read_only(engine)
        self.limits = limits or QueueLimits()
        # Error texts are stored scrubbed, as log lines are: a raw exception may carry a token.
        self.scrub = scrub or Scrubber()

    # ----------------------------------------------------------------- submit

    def submit(
        self,
        user_id: int,
        kind: str,
        spec: JobSpec,
        seed: int,
        now: datetime,
        target: DeliveryTarget | None = None,
        parent_id: int | None = None,
        source_blob: str | None = None,
        enforce_limits: bool = True,
    ) -> JobView:
        """Price a job, queue it with its fairness tags and its outbox row, in one transaction.

        Raises:
            LimitError: paused, banned, too many pending jobs, daily quota used up, queue full.
            NotFound: a re-roll of a job that has no track.
        """
        takes = [(seed, target)]
        return self.submit_takes(user_id, kind, spec, takes, now, parent_id, source_blob, enforce_limits)[0]

    def submit_takes(
        self,
        user_id: int,
        kind: str,
        spec: JobSpec,
        takes: list[tuple[int, DeliveryTarget | None]],
        now: datetime,
        parent_id: int | None = None,
        source_blob: str | None = None,
        enforce_limits: bool = True,
    ) -> list[JobView]:
        """Queue one job per (seed, target) take, all or none, in one transaction.

        Each take is a song of its own: it counts against the limits and gets its own fairness tags.

        Raises:
            LimitError: as `submit`, counting every take.
            NotFound: a re-roll of a job that has no track.
            UserError: more takes than `TAKES_MAX`, or a seed outside uint32.
        """
        check_takes(len(takes))
        if spec.best_of > 1 and any(target is not None for _, target in takes[1:]):
            raise ValueError("the takes of a best=N request share one delivery, the first take's")
        for seed, _ in takes:
            check_seed(seed)
        with self.engine.begin() as conn:
            # The user's row lock makes the limit check and the insert one step: on PostgreSQL two
            # submits of one user would otherwise both count the same pending jobs and both pass.
            # (SQLite renders no FOR UPDATE; BEGIN IMMEDIATE already serialises its writers.)
            user = conn.execute(select(users).where(users.c.id == user_id).with_for_update()).one()
            clock, paused = conn.execute(select(queue_state.c.vtime, queue_state.c.paused)).one()
            if enforce_limits:
                self._check_limits(conn, user, bool(paused), now, len(takes))
            cost = self._price(conn, kind, spec, parent_id)
            last_vfinish = user.last_vfinish
            job_ids = []
            for seed, target in takes:
                tags = fairness.tags_for(clock, last_vfinish, cost, user.weight)
                last_vfinish = tags.vfinish
                job = {"user_id": user_id, "kind": kind, "spec": spec.stored(), "seed": seed, "parent_id": parent_id}
                values = queued_job_values(job, source_blob, cost, tags, now, self.limits.max_attempts)
                job_ids.append(conn.execute(jobs.insert().values(**values).returning(jobs.c.id)).scalar_one())
                if target is not None:
                    conn.execute(deliveries.insert().values(**delivery_values(job_ids[-1], target)))
            if spec.best_of > 1 and takes[0][1] is not None:  # a best=N request: its one delivery names its takes
                best.record_group(conn, job_ids)
            # The user's chain of tags grows by these jobs.
            conn.execute(update(users).where(users.c.id == user_id).values(last_vfinish=last_vfinish))
            rows = conn.execute(select(jobs).where(jobs.c.id.in_(job_ids)).order_by(jobs.c.id)).all()
            return [job_view(row) for row in rows]

    def _price(self, conn: Connection, kind: str, spec: JobSpec, parent_id: int | None) -> float:
        """The cost to charge: a re-roll makes as much audio as the track it repeats (and a new take plans codes)."""
        if kind != "reroll" or parent_id is None:
            return fairness.price(kind, spec)
        made_s = conn.execute(select(tracks.c.duration_s).where(tracks.c.job_id == parent_id)).scalar_one_or_none()
        if made_s is None:
            raise NotFound(f"There is no finished song #{parent_id}.")
        return fairness.job_cost(float(made_s), planned=spec.new_take)

    def _check_limits(self, conn: Connection, user: Row[Any], paused: bool, now: datetime, count: int = 1) -> None:
        if user.banned:
            raise LimitError("You are not allowed to make songs here.")
        if user.role == "admin":
            return
        if paused:
            raise LimitError(PAUSED_MESSAGE)
        pending = conn.execute(
            select(func.count()).where(jobs.c.user_id == user.id, jobs.c.status.in_((QUEUED, RUNNING)))
        ).scalar_one()
        if count > 1 and pending + count > self.limits.max_pending_per_user:
            raise LimitError(
                f"{count} takes would put {counted(pending + count, 'song')} in the queue, and the limit is "
                f"{self.limits.max_pending_per_user}; ask for fewer takes."
            )
        if pending >= self.limits.max_pending_per_user:
            raise LimitError(
                f"You already have {counted(pending, 'song')} in the queue; wait for one to finish "
                f"(the limit is {self.limits.max_pending_per_user})."
            )
        quota = user.daily_quota if user.daily_quota is not None else self.limits.daily_quota
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        used = conn.execute(
            select(func.count()).where(
                jobs.c.user_id == user.id,
                jobs.c.created_at >= today,
                jobs.c.status != CANCELLED,
                jobs.c.kind.not_in(sorted(TRACKLESS_KINDS)),  # the quota counts songs
            )
        ).scalar_one()
        if quota and count > 1 and used < quota < used + count:
            left = counted(quota - used, "song")
            raise LimitError(f"You have {left} left for today, not {count}; ask for fewer takes.")
        if quota and used >= quota:
            made = counted(quota, "song")
            raise LimitError(f"You have made your {made} for today; the quota resets at midnight UTC.")
        if conn.dialect.name == "postgresql":  # one count-then-insert at a time for the whole queue's cap
            conn.execute(select(func.pg_advisory_xact_lock(QUEUE_CAP_LOCK)))
        total = conn.execute(select(func.count()).where(jobs.c.status == QUEUED)).scalar_one()
        if total + count > self.limits.max_queued_total:
            raise LimitError("The queue is full right now; please try again in a few minutes.")

    # ------------------------------------------------------------------ claim

    def claim(self, owner: str, n: int, now: datetime, lease_s: float) -> list[JobView]:
        """Claim up to `n` queued jobs in fairness order, leased to `owner` for `lease_s` (a suspect alone)."""
        with self.engine.begin() as conn:
            clock, paused = conn.execute(CLOCK).one()
            if paused:
                return []
            turn = reaper.turn(conn, owner, now)
            if not turn.may_claim:
                return []
            params = {"owner": owner, "now": now, "n": n, "expires": now + timedelta(seconds=lease_s)}
            if turn.suspect is None:
                rows = conn.execute(CLAIM, params).all()
            else:
                rows = conn.execute(CLAIM_ALONE, params | {"suspect_id": turn.suspect}).all()
            if not rows:
                return []
            # The clock is the start tag of the job in service: late arrivals start from here.
            new_clock = fairness.advance_clock(clock, [row.vstart for row in rows])
            if new_clock != clock:
                conn.execute(update(queue_state).where(queue_state.c.id == 1).values(vtime=new_clock))
            return sorted((job_view(row) for row in rows), key=lambda job: (job.vstart, job.id))

    # -------------------------------------------------------- while it runs

    def renew(self, job: JobView, owner: str, now: datetime, lease_s: float) -> bool:
        """Extend the lease; False means the worker no longer owns the job."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs).where(_owned(job, owner)).values(lease_expires_at=now + timedelta(seconds=lease_s))
            )
            return result.rowcount == 1

    def report(self, job: JobView, owner: str, stage: str, percent: float, now: datetime, lease_s: float) -> bool:
        """Record stage and percent (and renew the lease); False if the lease is lost."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(_owned(job, owner))
                .values(
                    stage=stage,
                    progress=max(0.0, min(100.0, percent)),
                    lease_expires_at=now + timedelta(seconds=lease_s),
                )
            )
            return result.rowcount == 1

    def complete(self, job: JobView, owner: str, track: NewTrack, now: datetime) -> None:
        """Store the track and mark the job succeeded, only if `owner` still holds it.

        Raises:
            LeaseLost: the lease expired and the job was requeued or taken by another worker.
        """
        with self.engine.begin() as conn:
            _succeed(conn, job, owner, now)
            conn.execute(tracks.insert().values(job_id=job.id, created_at=now, **track_values(track)))
            cost = fairness.final_price(job.kind, job.spec, track.duration_s)
            if cost is not None:
                self._correct(conn, job.id, cost)

    def complete_result(self, job: JobView, owner: str, result: Record, now: datetime) -> None:
        """A job that makes no track (`describe`, `TRACKLESS_KINDS`) succeeds with its `result`, fenced like `complete`.

        Raises:
            LeaseLost: the lease expired and the job was requeued or taken by another worker.
        """
        with self.engine.begin() as conn:
            _succeed(conn, job, owner, now, result)

    def complete_timing(self, job: JobView, owner: str, timing: LyricTiming | None, now: datetime) -> None:
        """A `timing` job's end: its song's track keeps the timing, and the job succeeds without a track.

        One transaction, fenced like `complete`: a worker that lost its lease changes neither. A song
        with no sung lines (`timing` None) keeps what it had; the result says 0 lines.

        Raises:
            LeaseLost: the lease expired and the job was requeued or taken by another worker.
        """
        song_id = job.parent_id
        if song_id is None:
            raise ValueError(f"timing job {job.id} names no song")
        result = TimingResult(song_id=song_id, lines=len(timing.lines) if timing is not None else 0)
        with self.engine.begin() as conn:
            _succeed(conn, job, owner, now, result)
            if timing is not None:
                conn.execute(update(tracks).where(tracks.c.job_id == song_id).values(timing=timing.stored()))

    def _correct(self, conn: Connection, job_id: int, cost: float) -> None:
        """Charge a finished job its real cost and move the user's jobs queued behind it by the refund.

        The user's last finish tag follows the job it belongs to, so their next song is charged from
        the corrected chain.
        """
        row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
        clock = conn.execute(select(queue_state.c.vtime)).scalar_one()
        later = conn.execute(
            select(jobs.c.id, jobs.c.vstart, jobs.c.vfinish)
            .where(jobs.c.user_id == row.user_id, jobs.c.status == QUEUED, jobs.c.vstart >= row.vfinish)
            .order_by(jobs.c.vstart, jobs.c.id)
        ).all()
        fixed, moved = fairness.correct(
            clock,
            fairness.Tags(row.vstart, row.vfinish),
            row.cost,
            cost,
            [fairness.Tags(other.vstart, other.vfinish) for other in later],
        )
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(cost=cost, vfinish=fixed.vfinish))
        renamed = {row.vfinish: fixed.vfinish}
        for other, tags in zip(later, moved, strict=True):
            conn.execute(update(jobs).where(jobs.c.id == other.id).values(vstart=tags.vstart, vfinish=tags.vfinish))
            renamed[other.vfinish] = tags.vfinish
        last = conn.execute(select(users.c.last_vfinish).where(users.c.id == row.user_id)).scalar_one()
        if last in renamed:
            conn.execute(update(users).where(users.c.id == row.user_id).values(last_vfinish=renamed[last]))

    def fail(self, job: JobView, owner: str, message: str, now: datetime) -> bool:
        """Mark the job failed with a sentence for the user; False if the lease is lost."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(_owned(job, owner))
                .values(
                    status=FAILED,
                    stage="failed",
                    finished_at=now,
                    error=self.scrub(message),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            return result.rowcount == 1

    def release(self, job: JobView, owner: str, alone: bool = False) -> bool:
        """Give a running job back to the queue (clean shutdown); the attempt is not counted.

        With `alone` it becomes a suspect (`reaper.py`), claimed alone from then on: an error that broke
        its batch then falls on the job that causes it.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs)
                .where(_owned(job, owner))
                .values(
                    status=QUEUED,
                    stage=QUEUED,
                    progress=0.0,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=jobs.c.attempts - 1,
                    suspect=or_(jobs.c.suspect, true() if alone else false()),
                )
            )
            return result.rowcount == 1

    def release_owned(self, owner: str) -> list[int]:
        """Give back every running job that `owner` leases, without counting an attempt; their ids.

        For an engine that stops (and for its supervisor once it had to kill one that did not stop in
        time): the next engine runs the jobs at once instead of after their lease. Fenced by owner: only
        that engine's leases move, and a job it no longer owns (reaped, completed) stays as it is.
        """
        with self.engine.begin() as conn:
            released = conn.execute(
                update(jobs)
                .where(jobs.c.lease_owner == owner, jobs.c.status == RUNNING)
                .values(
                    status=QUEUED,
                    stage=QUEUED,
                    progress=0.0,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=jobs.c.attempts - 1,
                )
                .returning(jobs.c.id)
            )
            return sorted(released.scalars().all())

    def reap(self, now: datetime, backoff_s: float = 0.0) -> list[tuple[int, str]]:
        """Requeue the running jobs of each engine whose lease expired, or mark them dead (rule: `reaper.blame`).

        Returns:
            (job id, new status) for each job reaped.
        """
        with self.engine.begin() as conn:
            return reaper.reap(conn, now, backoff_s)

    # ----------------------------------------------------------------- cancel

    def cancel(self, job_id: int, user_id: int | None, now: datetime) -> JobView:
        """Cancel a queued job and refund its fairness tag (`user_id` None: an admin, any job).

        Raises:
            NotFound: no such job of this user.
            UserError: the job is already running or finished.
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
            if row is None or (user_id is not None and row.user_id != user_id):
                raise NotFound(f"I can't find a song #{job_id} of yours in the queue.")
            if row.status != QUEUED:
                raise UserError(_not_cancellable(row.status, job_id))
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == QUEUED)
                .values(status=CANCELLED, stage="cancelled", finished_at=now)
            )
            self._refund(conn, row)
            return job_view(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())

    def _refund(self, conn: Connection, row: Row[Any]) -> None:
        user = conn.execute(select(users).where(users.c.id == row.user_id)).one()
        clock = conn.execute(select(queue_state.c.vtime)).scalar_one()
        was_last = user.last_vfinish == row.vfinish
        last = fairness.refund(clock, user.last_vfinish, fairness.Tags(row.vstart, row.vfinish), was_last)
        conn.execute(update(users).where(users.c.id == row.user_id).values(last_vfinish=last))

    # ----------------------------------------------------------------- reads

    def get(self, job_id: int) -> JobView | None:
        """One job, or None."""
        with self.reader.begin() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
            return job_view(row) if row is not None else None

    def pending_of(self, user_id: int) -> list[JobView]:
        """A user's queued and running jobs, oldest first."""
        with self.reader.begin() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.user_id == user_id, jobs.c.status.in_((QUEUED, RUNNING))).order_by(jobs.c.id)
            ).all()
            return [job_view(row) for row in rows]

    def position(self, job: JobView) -> tuple[int, float]:
        """How many jobs run before this one, and their cost in audio seconds."""
        with self.reader.begin() as conn:
            ahead = or_(jobs.c.vstart < job.vstart, and_(jobs.c.vstart == job.vstart, jobs.c.id < job.id))
            count, cost = conn.execute(
                select(func.count(), func.coalesce(func.sum(jobs.c.cost), 0.0)).where(jobs.c.status == QUEUED, ahead)
            ).one()
            running_count, running_cost = conn.execute(
                select(func.count(), func.coalesce(func.sum(jobs.c.cost), 0.0)).where(jobs.c.status == RUNNING)
            ).one()
            return int(count) + int(running_count), float(cost) + float(running_cost)

    def seconds_per_cost(self, default: float = 1.0, sample: int = 20) -> float:
        """Recent busy seconds per unit of cost, to turn a backlog into an ETA.

        Busy time is the union of the recent jobs' run intervals: jobs that ran together in one
        batch count their shared time once, and idle gaps between jobs do not count.
        """
        with self.reader.begin() as conn:
            rows = conn.execute(
                select(jobs.c.cost, jobs.c.started_at, jobs.c.finished_at)
                .where(jobs.c.status == SUCCEEDED, jobs.c.started_at.is_not(None))
                .order_by(jobs.c.finished_at.desc())
                .limit(sample)
            ).all()
        spent = busy_seconds([(row.started_at, row.finished_at) for row in rows])
        cost = sum(row.cost for row in rows)
        return spent / cost if cost > 0 and spent > 0 else default

    def set_paused(self, paused: bool) -> None:
        """Admin switch: while paused, nobody but admins can submit and no job is claimed."""
        with self.engine.begin() as conn:
            conn.execute(update(queue_state).where(queue_state.c.id == 1).values(paused=paused))

    def is_paused(self) -> bool:
        """Whether an admin paused the queue."""
        with self.reader.begin() as conn:
            return bool(conn.execute(select(queue_state.c.paused)).scalar_one())

    def counts(self) -> dict[str, int]:
        """Number of jobs in each state."""
        with self.reader.begin() as conn:
            rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
            return {status: int(count) for status, count in rows}


def busy_seconds(intervals: list[tuple[datetime, datetime]]) -> float:
    """The length of the union of time intervals."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


def _succeed(conn: Connection, job: JobView, owner: str, now: datetime, result: Record | None = None) -> None:
    """Mark a job succeeded (with its `result`, for a job that makes no track), only if `owner` still holds it.

    Raises:
        LeaseLost: the lease expired and the job was requeued or taken by another worker.
    """
    done = conn.execute(
        update(jobs)
        .where(_owned(job, owner))
        .values(
            status=SUCCEEDED,
            stage="done",
            progress=100.0,
            finished_at=now,
            lease_owner=None,
            lease_expires_at=None,
            error=None,
            result=result.stored() if result is not None else None,
        )
    )
    if done.rowcount != 1:
        raise LeaseLost("The engine lost its lease on this song.")


def _owned(job: JobView, owner: str) -> Any:
    """The fence: this worker, this attempt, still running."""
    return and_(
        jobs.c.id == job.id, jobs.c.lease_owner == owner, jobs.c.attempts == job.attempts, jobs.c.status == RUNNING
    )


def _not_cancellable(status: str, job_id: int) -> str:
    if status == RUNNING:
        return f"Song #{job_id} is already being made, so it can't be cancelled any more."
    return f"Song #{job_id} is already finished."
