"""Kill attribution: a death counts against a job only when its engine ran it alone (SQLite and PostgreSQL).

Engines here are owner names and deaths are clocks moved past the lease: no process is killed.
"""

from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.contract.types import DEAD, QUEUED, RUNNING, SUCCEEDED, QueueLimits
from storage.models import Job
from storage.queue.jobs import Queue
from storage.queue.reaper import Lapsed, Verdicts, blame
from tests.storage.queue.test_jobs import T0, submit, track, user

LEASE_S = 5.0


def attempts_left(engine, job_id):
    """How many more deaths a job may cause before it is dead (its budget: max_attempts less attempts)."""
    jobs = Job.__table__
    with engine.connect() as conn:
        row = conn.execute(select(jobs.c.attempts, jobs.c.max_attempts).where(jobs.c.id == job_id)).one()
    return row.max_attempts - row.attempts


@pytest.fixture
def queue(db):
    return Queue(db, QueueLimits(max_pending_per_user=100, daily_quota=0, max_attempts=3, max_queued_total=1000))


class Line:
    """A queue, a clock, and engines that claim, finish, or die."""

    def __init__(self, queue, accounts_db):
        from storage.queue.accounts import Accounts

        self.queue = queue
        self.now = T0
        uid = user(Accounts(accounts_db))
        self.jobs = [submit(queue, uid, cost=10.0) for _ in range(8)]

    def claim(self, owner, n=4):
        return self.queue.claim(owner, n, self.now, LEASE_S)

    def die(self):
        """An engine dies (or its host): its leases run out, and the next claim's reaper finds them."""
        self.now += timedelta(seconds=LEASE_S + 1)
        return self.queue.reap(self.now)

    def finish(self, owner, jobs):
        for job in jobs:
            self.queue.complete(job, owner, track(), self.now)

    def status(self):
        return [self.queue.get(job.id).status for job in self.jobs]

    def attempts_left(self):
        return [attempts_left(self.queue.engine, job.id) for job in self.jobs]


@pytest.fixture
def line(queue, db):
    return Line(queue, db)


def test_the_rule_blames_a_job_only_when_its_engine_ran_it_alone():
    lapsed = [Lapsed(1, "a", 1, 3), Lapsed(2, "a", 3, 3), Lapsed(3, "b", 1, 3), Lapsed(4, "c", 3, 3)]
    assert blame(lapsed) == Verdicts(dead=[4], retried=[3], suspects=[1, 2])


def test_kills_that_no_job_caused_no_longer_use_up_the_head_of_the_queue(line):
    """The issue's case: three engine kills while it worked through the head of the line."""
    for death in range(3):
        claimed = line.claim(f"engine-{death}") + line.claim(f"engine-{death}")  # a batch and one claimed ahead
        assert claimed
        line.die()
    assert DEAD not in line.status()  # before: the first eight jobs went dead after three kills
    assert line.attempts_left() == [1] + [3] * 7  # two deaths alone counted against the first suspect only
    for _ in range(40):
        line.finish("survivor", line.claim("survivor"))
    assert line.status() == [SUCCEEDED] * 8


def test_a_job_that_kills_its_engine_is_found_and_only_it_goes_dead(line):
    poison = line.jobs[2].id
    deaths = 0
    for _ in range(40):  # bounded: without isolation the poison never runs alone, and this would spin
        if QUEUED not in line.status():
            break
        claimed = line.claim("engine") + line.claim("engine")
        if poison in [job.id for job in claimed]:
            line.die()
            deaths += 1
        else:
            line.finish("engine", claimed)
    assert line.queue.get(poison).status == DEAD
    assert line.status().count(SUCCEEDED) == 7
    assert deaths == 1 + 3  # one shared death, then max_attempts of its own


def test_a_suspect_is_claimed_alone_and_nothing_beside_it(line):
    first = line.claim("a", 4)
    line.die()
    assert [attempts_left(line.queue.engine, job.id) for job in first] == [3, 3, 3, 3]  # not counted
    [alone] = line.claim("b", 4)
    assert alone.id == first[0].id and alone.attempts == 2  # a new attempt: its own fence and file name
    assert line.claim("b", 4) == []  # nothing more while a suspect runs
    [other] = line.claim("c", 4)  # another engine, idle: the next suspect, alone too
    assert other.id == first[1].id
    line.finish("b", [alone])
    line.finish("c", [other])
    batch = line.claim("b", 4)
    assert [job.id for job in batch] == [first[2].id]  # still suspects first, one at a time


def test_an_engine_busy_with_a_batch_waits_for_a_suspect_at_the_head(line):
    a0, a1 = line.claim("a", 1) + line.claim("a", 1)
    line.now += timedelta(seconds=4)
    b_batch = line.claim("b", 2)  # b's leases run 4 s longer than a's
    line.now += timedelta(seconds=2)
    assert sorted(line.queue.reap(line.now)) == [(a0.id, QUEUED), (a1.id, QUEUED)]  # a died, b lives
    assert line.claim("b", 4) == []  # b runs a batch: the suspect at the head waits for an idle engine
    [alone] = line.claim("c", 4)
    assert alone.id == a0.id
    line.finish("b", b_batch)
    [next_alone] = line.claim("b", 4)  # idle now
    assert next_alone.id == a1.id


def test_a_batch_skips_a_suspect_further_back_and_the_suspect_goes_next(queue, db):
    from storage.queue.accounts import Accounts

    uid = user(Accounts(db))
    head, suspect, later = (submit(queue, uid, cost=10.0) for _ in range(3))
    queue.claim("a", 1, T0, LEASE_S)  # head
    queue.claim("a", 1, T0, LEASE_S)  # suspect-to-be
    reaped = queue.reap(T0 + timedelta(seconds=LEASE_S + 1))
    assert sorted(reaped) == [(head.id, QUEUED), (suspect.id, QUEUED)]
    now = T0 + timedelta(seconds=LEASE_S + 1)
    [alone] = queue.claim("b", 4, now, LEASE_S)
    queue.complete(alone, "b", track(), now)
    [next_alone] = queue.claim("b", 4, now, LEASE_S)
    assert next_alone.id == suspect.id
    queue.complete(next_alone, "b", track(), now)
    assert [job.id for job in queue.claim("b", 4, now, LEASE_S)] == [later.id]


def test_one_expired_lease_reaps_all_that_engine_runs(queue, db):
    """One death, judged whole: the engine's other leases, renewed later, would otherwise come back one by one."""
    from storage.queue.accounts import Accounts

    uid = user(Accounts(db))
    first, second = submit(queue, uid), submit(queue, uid)
    [a] = queue.claim("e", 1, T0, LEASE_S)
    [b] = queue.claim("e", 1, T0 + timedelta(seconds=4), LEASE_S)  # its lease runs 4 s longer
    assert sorted(queue.reap(T0 + timedelta(seconds=LEASE_S + 1))) == [(first.id, QUEUED), (second.id, QUEUED)]
    assert queue.get(b.id).status == QUEUED and attempts_left(queue.engine, a.id) == 3
    assert not queue.renew(b, "e", T0 + timedelta(seconds=7), LEASE_S)  # fenced off


def test_a_lone_job_is_counted_and_goes_dead_after_max_attempts(line):
    now = line.now
    for attempt in range(1, 4):
        [job] = line.queue.claim("e", 1, now, LEASE_S)
        assert job.attempts == attempt
        now += timedelta(seconds=LEASE_S + 1)
        reaped = line.queue.reap(now)
    assert reaped == [(line.jobs[0].id, DEAD)]
    assert line.queue.get(line.jobs[1].id).status == QUEUED and attempts_left(line.queue.engine, line.jobs[1].id) == 3
    assert RUNNING not in line.status()
