"""Concurrency: four claimers drain 2,000 jobs exactly once; per-user limits hold under a burst of submits."""

import threading
from collections import Counter

from sqlalchemy import insert

from storage.contract.errors import LimitError
from storage.contract.spec import JobSpec
from storage.contract.types import DeliveryTarget, QueueLimits, UserRef
from storage.db import make_engine, utcnow
from storage.models import Job
from storage.queue.accounts import Accounts
from storage.queue.fairness import Tags
from storage.queue.jobs import Queue
from storage.queue.rows import queued_job_values

CLAIMERS = 4
JOBS = CLAIMERS * 500


def fill(db, jobs: int) -> None:
    now = utcnow()
    users = [Accounts(db).ensure(UserRef("console", str(i)), now).id for i in range(20)]
    rows = [
        queued_job_values(
            {"user_id": users[i % 20], "kind": "song", "spec": {"duration_s": 10}, "seed": i},
            None,
            10.0,
            Tags(vstart=float(i // 20) * 10.0, vfinish=float(i // 20 + 1) * 10.0),
            now,
            max_attempts=3,
        )
        for i in range(jobs)
    ]
    with db.begin() as conn:
        conn.execute(insert(Job.__table__), rows)


def test_every_job_claimed_exactly_once(db):
    fill(db, JOBS)
    claimed: list[list[int]] = [[] for _ in range(CLAIMERS)]
    errors: list[BaseException] = []
    start = threading.Barrier(CLAIMERS)

    def claimer(index: int) -> None:
        # Each claimer has its own engine and connection pool, as separate engine processes would.
        engine = make_engine(db.url.render_as_string(hide_password=False))
        queue = Queue(engine)
        start.wait()
        try:
            while True:
                batch = queue.claim(f"w{index}", 1 + index % 3, utcnow(), lease_s=300)
                if not batch:
                    return
                claimed[index].extend(job.id for job in batch)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(CLAIMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    counts = Counter(job_id for ids in claimed for job_id in ids)
    assert len(counts) == JOBS
    assert max(counts.values()) == 1
    # SQLite's busy handler is not fair, so one claimer may win little; several must have won.
    assert sum(1 for ids in claimed if ids) >= 2, [len(ids) for ids in claimed]
    assert Queue(db).counts() == {"running": JOBS}


# ------------------------------------------------------- per-user limits under concurrency

BURST = 10
ROUNDS = 8


def burst(count: int, action) -> tuple[list, list[BaseException]]:
    """Run `action(i)` in `count` threads released together; (results, exceptions)."""
    results: list = []
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        try:
            results.append(action(index))
        except BaseException as error:  # noqa: BLE001 - sorted by the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


def submit_burst(db, limits: QueueLimits) -> tuple[list, list[BaseException]]:
    user = Accounts(db).ensure(UserRef("telegram", "flood"), utcnow())
    queue = Queue(db, limits)
    spec = JobSpec.build(caption="rain", duration_s=10)
    return burst(BURST, lambda i: queue.submit(user.id, "song", spec, i, utcnow(), DeliveryTarget("telegram", "c")))


def test_ten_simultaneous_submits_of_one_user_stop_at_the_pending_cap(db):
    accepted, refused = submit_burst(db, QueueLimits(max_pending_per_user=3, daily_quota=0))
    assert len(accepted) == 3, [type(error).__name__ for error in refused]
    assert len(refused) == BURST - 3
    assert all(type(error) is LimitError and "the limit is 3" in error.user_message for error in refused), refused
    assert Queue(db).counts() == {"queued": 3}


def test_ten_simultaneous_submits_of_one_user_stop_at_the_daily_quota(db):
    accepted, refused = submit_burst(db, QueueLimits(max_pending_per_user=100, daily_quota=4))
    assert len(accepted) == 4, [type(error).__name__ for error in refused]
    assert all(type(error) is LimitError and "your 4 songs for today" in error.user_message for error in refused)


def test_ten_simultaneous_submits_of_ten_users_stop_at_the_whole_queues_cap(db):
    # Several rounds, the cap four more each time: one round alone often misses the race on the old code.
    users = [Accounts(db).ensure(UserRef("telegram", f"crowd-{i}"), utcnow()).id for i in range(BURST)]
    spec = JobSpec.build(caption="rain", duration_s=10)
    for round_ in range(1, 4):
        queue = Queue(db, QueueLimits(max_queued_total=4 * round_, max_pending_per_user=BURST, daily_quota=0))
        accepted, refused = burst(BURST, lambda i, queue=queue: queue.submit(users[i], "song", spec, i, utcnow(), None))
        assert len(accepted) == 4, [type(error).__name__ for error in refused]
        assert all(type(error) is LimitError and "queue is full" in error.user_message for error in refused)
    assert Queue(db).counts() == {"queued": 12}


def test_simultaneous_first_commands_of_a_new_user_make_one_row(db):
    # Several rounds, each a new user: one round alone often misses the race on the old code.
    for round_ in range(ROUNDS):
        ref = UserRef("discord", f"newcomer-{round_}", "New")
        seen, errors = burst(BURST, lambda i, ref=ref: Accounts(db).ensure(ref, utcnow()).id)
        assert errors == [], errors[:1]
        assert len(set(seen)) == 1 and len(seen) == BURST
    assert Accounts(db).count() == ROUNDS
