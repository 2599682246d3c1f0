"""The reaper: the jobs of an engine that stopped renewing its leases, and which of them its death counts against.

An engine renews the leases of all the jobs it is running. Once one of them has expired, that
engine died (or hung), and every job it was running is reaped in the same pass: requeued, or marked
dead after too many attempts. Which deaths count against a job (the rule, `blame`):

    the engine was running this job alone      → its attempt counts: the job is the likely cause
                                                 (dead once it has used `max_attempts`)
    the engine was running it beside others    → nobody can tell which one killed it: each gets one
                                                 more attempt and becomes a *suspect*
    a suspect is claimed alone (`turn`)         → an engine claims a suspect only when it runs nothing
                                                 else, and claims nothing more while it runs one, so
                                                 a suspect's next death is known to be its own

So an engine killed for reasons of its own (an operator, the OOM killer, a deploy) no longer uses up
the attempts of every job at the head of the queue; a job that does kill the engine is marked dead
after one shared death and `max_attempts` deaths of its own. The price: after a shared death, the
jobs of the dead engine run one at a time, each once. The statements here belong to `queue.py`'s
state diagram; they live apart only to keep that file short.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from storage.contract.types import DEAD, QUEUED, RUNNING
from storage.models import jobs_table as jobs

DEAD_MESSAGE = "This song failed several times in a row, so I gave up on it; please try again later."


@dataclass(frozen=True)
class Lapsed:
    """A running job of an engine whose lease on one of its jobs expired."""

    id: int
    owner: str
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class Verdicts:
    """What the reaper does with each lapsed job."""

    dead: list[int]
    retried: list[int]  # requeued, the attempt counted
    suspects: list[int]  # requeued with one more attempt allowed; claimed alone from now on


def blame(lapsed: list[Lapsed]) -> Verdicts:
    """The rule: a death counts against a job only when its engine was running that job alone."""
    by_owner: dict[str, list[Lapsed]] = defaultdict(list)
    for job in lapsed:
        by_owner[job.owner].append(job)
    verdicts = Verdicts([], [], [])
    for group in by_owner.values():
        if len(group) > 1:
            verdicts.suspects.extend(job.id for job in group)
        elif group[0].attempts >= group[0].max_attempts:
            verdicts.dead.append(group[0].id)
        else:
            verdicts.retried.append(group[0].id)
    return Verdicts(sorted(verdicts.dead), sorted(verdicts.retried), sorted(verdicts.suspects))


# Owners with an expired lease: an index scan of running jobs by expiry (ix_jobs_running_lease).
LAPSED_OWNERS = (
    select(jobs.c.lease_owner).where(jobs.c.status == RUNNING, jobs.c.lease_expires_at < bindparam("now")).distinct()
)


def reap(conn: Connection, now: datetime, backoff_s: float) -> list[tuple[int, str]]:
    """Reap every running job of each engine with an expired lease; (job id, new status) for each."""
    owners = conn.execute(LAPSED_OWNERS, {"now": now}).scalars().all()
    if not owners:
        return []
    # All the jobs of those engines, expired or not yet: one death, judged as a whole. Locked, so that
    # an engine that was only slow can't complete one of them between this read and the writes.
    rows = conn.execute(
        select(jobs.c.id, jobs.c.lease_owner, jobs.c.attempts, jobs.c.max_attempts)
        .where(jobs.c.status == RUNNING, jobs.c.lease_owner.in_(owners))
        .with_for_update()
    ).all()
    verdicts = blame([Lapsed(row.id, row.lease_owner, row.attempts, row.max_attempts) for row in rows])
    gone = {"lease_owner": None, "lease_expires_at": None}
    # Retries keep their start tag, so they re-enter near the front of the line.
    requeued = {"status": QUEUED, "stage": QUEUED, "progress": 0.0, "run_after": now + timedelta(seconds=backoff_s)}
    _set(conn, verdicts.dead, status=DEAD, stage="failed", error=DEAD_MESSAGE, finished_at=now, **gone)
    _set(conn, verdicts.retried, **requeued, **gone)
    # One more attempt allowed rather than one given back: `attempts` only grows, so the fence and the
    # track's file name (one per attempt) stay apart from the dead engine's, should it only have hung.
    _set(conn, verdicts.suspects, **requeued, **gone, max_attempts=jobs.c.max_attempts + 1, suspect=True)
    return [(job_id, DEAD) for job_id in verdicts.dead] + [
        (job_id, QUEUED) for job_id in sorted(verdicts.retried + verdicts.suspects)
    ]


def _set(conn: Connection, ids: list[int], **values: Any) -> None:
    if ids:
        conn.execute(update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == RUNNING).values(**values))


class Turn(NamedTuple):
    """Whether an engine may claim now, and the suspect it must then claim alone (None: a batch, no suspect)."""

    may_claim: bool
    suspect: int | None


# What this engine runs: no row (nothing), False (jobs, no suspect) or True (a suspect); one step down
# ix_jobs_running_owner.
RUNNING_OF = (
    select(jobs.c.suspect)
    .where(jobs.c.status == RUNNING, jobs.c.lease_owner == bindparam("owner"))
    .order_by(jobs.c.suspect.desc())
    .limit(1)
)
# The job at the head of the line (the first row of ix_jobs_queued_vstart that may run now).
HEAD = (
    select(jobs.c.id, jobs.c.suspect)
    .where(jobs.c.status == QUEUED, jobs.c.run_after <= bindparam("now"))
    .order_by(jobs.c.vstart, jobs.c.id)
    .limit(1)
)


def turn(conn: Connection, owner: str, now: datetime) -> Turn:
    """What `owner` may claim: nothing while it runs a suspect; the suspect at the head alone once it runs nothing.

    A suspect further back waits for its turn at the head (batches skip it), so a claim never puts
    a suspect beside another job.
    """
    runs = conn.execute(RUNNING_OF, {"owner": owner}).scalar_one_or_none()
    if runs:
        return Turn(False, None)
    head = conn.execute(HEAD, {"now": now}).one_or_none()
    if head is None or not head.suspect:
        return Turn(True, None)
    return Turn(runs is None, head.id)
