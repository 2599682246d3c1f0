"""Four claimers drain 2,000 jobs (500 each on average): every job is claimed exactly once."""

import threading
from collections import Counter

from sqlalchemy import insert

from storage.accounts import Accounts
from storage.db import make_engine, utcnow
from storage.models import Job
from storage.queue import Queue
from storage.types import UserRef

CLAIMERS = 4
JOBS = CLAIMERS * 500


def fill(db, jobs: int) -> None:
    now = utcnow()
    users = [Accounts(db).ensure(UserRef("console", str(i)), now).id for i in range(20)]
    rows = [
        {
            "user_id": users[i % 20],
            "kind": "song",
            "spec": {"duration_s": 10},
            "seed": i,
            "status": "queued",
            "stage": "queued",
            "progress": 0.0,
            "attempts": 0,
            "max_attempts": 3,
            "run_after": now,
            "cost": 10.0,
            "vstart": float(i // 20) * 10.0,
            "vfinish": float(i // 20 + 1) * 10.0,
            "created_at": now,
        }
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
