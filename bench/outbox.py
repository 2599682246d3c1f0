"""Outbox benchmark: one delivery pass's claim with a deep backlog of open deliveries. Prints one JSON object.

    python bench/outbox.py [--database-url URL] [--open 5000] [--out bench/results/outbox-sqlite.json]

- claim_p50_ms / claim_p99_ms: `Outbox.claim_open` (50 rows, the delivery loop's default) with `--open`
  deliveries of waiting jobs, all of one platform, on a file-backed SQLite database (or the URL given).
- passes_until_finished_claimed: a job near the end of the line finishes; how many passes it takes until its
  delivery is claimed (1: finished jobs go first).
- passes_to_see_every_open_row: passes until every open row was claimed at least once (they take turns).
Times come from a simulated clock, one second per pass (no sleeping).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.queue_bench import drop, fresh_queue  # noqa: E402
from bench.report import emit  # noqa: E402
from storage.contract.spec import JobSpec  # noqa: E402
from storage.contract.types import DeliveryTarget, UserRef  # noqa: E402
from storage.queue.accounts import Accounts  # noqa: E402
from storage.queue.jobs import Queue  # noqa: E402
from storage.queue.outbox import Outbox  # noqa: E402

T0 = datetime(2026, 1, 1)
LIMIT = 50


def fill(queue: Queue, count: int) -> list[int]:
    """`count` waiting jobs of one user, each with a Telegram delivery."""
    user = Accounts(queue.engine).ensure(UserRef("telegram", "1", "Ann"), T0).id
    target = DeliveryTarget("telegram", "42")
    return [
        queue.submit(user, "song", JobSpec(caption="x", duration_s=10), 7, T0, target, enforce_limits=False).id
        for _ in range(count)
    ]


def claimed(outbox: Outbox, second: int) -> list[int]:
    now = T0 + timedelta(seconds=second)
    return [job.id for _, job in outbox.claim_open("telegram", "bot", now, lease_s=60, limit=LIMIT)]


def measure(queue: Queue, count: int) -> dict[str, float | int | None]:
    """Latency of claims, then the two pass counts."""
    ids = fill(queue, count)
    outbox = Outbox(queue.engine)
    seen: set[int] = set()
    times = []
    second = 0
    most = 3 * count // LIMIT  # give up (and report None) after three times the passes a fair turn takes
    while len(seen) < count and second < most:
        started = time.perf_counter()
        seen.update(claimed(outbox, second))
        times.append((time.perf_counter() - started) * 1000)
        second += 1
    every = second if len(seen) == count else None
    queue.cancel(ids[-2], None, T0)
    passes: int | None = 1
    while ids[-2] not in claimed(outbox, second + passes):
        passes += 1
        if passes > most:
            passes = None
            break
    return {
        "open_deliveries": count,
        "claim_p50_ms": round(statistics.median(times), 3),
        "claim_p99_ms": round(sorted(times)[int(0.99 * (len(times) - 1))], 3),
        "passes_until_finished_claimed": passes,
        "passes_to_see_every_open_row": every,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--open", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result: dict[str, object] = {
            "database": args.database_url.split("@")[-1] if args.database_url else "sqlite (file, WAL)"
        }
        try:
            result.update(measure(fresh_queue(args.database_url, Path(folder), "outbox"), args.open))
        finally:
            drop(args.database_url, "outbox")
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
