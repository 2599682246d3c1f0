"""Queue benchmark: claim latency under a deep backlog, and fairness under floods. Prints one JSON object.

    python bench/queue_bench.py [--database-url URL] [--out bench/results/queue.json]

- claim_p50_ms / claim_p99_ms: one-job claims (the engine's hot path) with 20,000 jobs of 200 users queued,
  on a file-backed SQLite database in WAL mode (or the URL given).
- jain_index: four users flood jobs of different lengths (10, 30, 60, 120 s) with weights (1, 1, 2, 0.5);
  one simulated GPU serves them; Jain's index over GPU-seconds per weight while all four are backlogged.
- light_user_max_wait_jobs: one user floods 200 jobs of 30 s; five one-job users arrive at scattered
  times; the longest wait of a one-job user from submit to start, in job durations.
The simulations run the real queue code against a simulated clock (no sleeping).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402

from bench.report import emit  # noqa: E402
from migrations import upgrade  # noqa: E402
from storage.contract.results import ModelInfo, TrackMeta  # noqa: E402
from storage.contract.spec import JobSpec  # noqa: E402
from storage.contract.types import NewTrack, QueueLimits, UserRef  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.models import Job  # noqa: E402
from storage.queue.accounts import Accounts  # noqa: E402
from storage.queue.fairness import jain_index, tags_for  # noqa: E402
from storage.queue.jobs import Queue  # noqa: E402
from storage.queue.rows import queued_job_values  # noqa: E402

T0 = datetime(2026, 1, 1)
UNLIMITED = QueueLimits(max_pending_per_user=10**9, daily_quota=0, max_queued_total=10**9)


def fresh_queue(url: str | None, folder: Path, name: str) -> Queue:
    """A migrated database: a SQLite file in `folder`, or a schema of its own on the server at `url`."""
    if url is None:
        engine = make_engine(f"sqlite:///{folder / name}.db")
    else:
        with make_engine(url).begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS bench_{name} CASCADE; CREATE SCHEMA bench_{name}")
        separator = "&" if "?" in url else "?"
        engine = make_engine(f"{url}{separator}options=-csearch_path%3Dbench_{name}")
    upgrade(engine)
    return Queue(engine, UNLIMITED)


def drop(url: str | None, name: str) -> None:
    """Remove a benchmark schema from the server."""
    if url is not None:
        with make_engine(url).begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS bench_{name} CASCADE")


def claim_latency(queue: Queue, users: int = 200, jobs: int = 20_000, claims: int = 2_000) -> dict[str, float]:
    ids = [Accounts(queue.engine).ensure(UserRef("bench", str(u)), T0).id for u in range(users)]
    rows, last = [], dict.fromkeys(ids, 0.0)
    for i in range(jobs):
        user = ids[i % users]
        tags = tags_for(0.0, last[user], 30.0, 1.0)
        last[user] = tags.vfinish
        job = {"user_id": user, "kind": "song", "spec": {"duration_s": 30}, "seed": i}
        rows.append(queued_job_values(job, None, 30.0, tags, T0, max_attempts=3))
    with queue.engine.begin() as conn:
        conn.execute(insert(Job.__table__), rows)
    timings = []
    for _ in range(claims):
        start = time.perf_counter()
        queue.claim("bench", 1, T0, 30.0)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    return {
        "claim_p50_ms": round(timings[len(timings) // 2], 3),
        "claim_p99_ms": round(timings[int(len(timings) * 0.99)], 3),
    }


def serve(
    queue: Queue, arrivals: list[tuple[float, int, float]], until_s: float
) -> list[tuple[int, float, float, float]]:
    """Simulate one GPU: returns (user id, submitted, started, cost) for each job served."""
    pending = sorted(arrivals)
    submitted: dict[int, float] = {}
    served, now = [], 0.0
    while now < until_s and (pending or queue.counts().get("queued")):
        while pending and pending[0][0] <= now:
            at, user, cost = pending.pop(0)
            # A cover is charged exactly its length, so the simulated cost is the queue's.
            job = queue.submit(
                user, "cover", JobSpec(duration_s=cost), 0, T0 + timedelta(seconds=at), enforce_limits=False
            )
            submitted[job.id] = at
        batch = queue.claim("gpu", 1, T0 + timedelta(seconds=now), 3600.0)
        if not batch:
            now = pending[0][0] if pending else until_s
            continue
        job = batch[0]
        served.append((job.user_id, submitted[job.id], now, job.cost))
        now += job.cost
        queue.complete(
            job,
            "gpu",
            NewTrack("x", job.cost, 0, "", "", "", "", TrackMeta(), ModelInfo()),
            T0 + timedelta(seconds=now),
        )
    return served


def fairness(queue: Queue) -> float:
    accounts = Accounts(queue.engine)
    spec = [(10.0, 1.0), (30.0, 1.0), (60.0, 2.0), (120.0, 0.5)]
    users = []
    for index, (_, weight) in enumerate(spec):
        user = accounts.ensure(UserRef("bench", f"flood{index}"), T0)
        accounts.set_weight(user.id, weight)
        users.append(user.id)
    arrivals = [(0.0, users[i], cost) for i, (cost, _) in enumerate(spec) for _ in range(int(3000 / cost))]
    served = serve(queue, arrivals, until_s=1500.0)  # every user is still backlogged at 1500 s
    per_weight = []
    for user, (_, weight) in zip(users, spec, strict=True):
        gpu_s = sum(cost for u, _, _, cost in served if u == user)
        per_weight.append(gpu_s / weight)
    return round(jain_index(per_weight), 4)


def light_user_wait(queue: Queue, job_s: float = 30.0) -> float:
    accounts = Accounts(queue.engine)
    heavy = accounts.ensure(UserRef("bench", "heavy"), T0).id
    lights = [accounts.ensure(UserRef("bench", f"light{i}"), T0).id for i in range(5)]
    arrivals = [(0.0, heavy, job_s)] * 200
    arrivals += [(at, user, job_s) for at, user in zip((1.0, 95.0, 440.0, 1234.5, 3001.0), lights, strict=True)]
    served = serve(queue, arrivals, until_s=10**6)
    waits = [(start - submitted) / job_s for user, submitted, start, _ in served if user in lights]
    return round(max(waits), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = {"database": args.database_url.split("@")[-1] if args.database_url else "sqlite (file, WAL)"}
        url = args.database_url
        try:
            result.update(claim_latency(fresh_queue(url, Path(folder), "claims")))
            result["jain_index"] = fairness(fresh_queue(url, Path(folder), "fair"))
            result["light_user_max_wait_jobs"] = light_user_wait(fresh_queue(url, Path(folder), "light"))
        finally:
            for name in ("claims", "fair", "light"):
                drop(url, name)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
