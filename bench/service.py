"""The service benchmarks. Prints one JSON object.

    python bench/service.py [--jobs 200] [--seconds 10] [--out bench/results/service.json]
    python bench/service.py --full-size [--songs 24] [--load-s 60]     # GPU: the whole service under load
    python bench/service.py --tiny                                      # CPU: the same run with tiny models

Without a mode flag, a null backend returns silence at once, so what is timed is the service itself:
submit (validation, limits, fairness tags, outbox row), the engine's claim, MP3 encode and tagging, the
fenced completion, and the delivery loop's pass that posts the result to a messenger that does nothing.
Reported per job, p50 and p99, on a file-backed SQLite database in WAL mode.

``--full-size`` runs the real thing: the pipelined engine worker (planner thread, DiT + VAE, encode
pool) over the real queue and delivery loop, with the official model sizes and random bf16 weights
built in memory (the 5 Hz LM planner too, 1.7B). Simulated users submit 180 s songs: first
``--songs`` at once (saturation: songs per hour, measured after the first batch is delivered), then
Poisson arrivals at half that rate for ``--load-s`` seconds (p50 and p95 from submit to delivered).
Also reported: the GPU's busy share (planning or generating) and the time per stage. SQLite in WAL
mode, or PostgreSQL with ``--database-url`` when it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.load import load_main  # noqa: E402
from bench.report import emit  # noqa: E402
from bot.core.delivery import DeliveryLoop  # noqa: E402
from bot.core.parser import SongRequest  # noqa: E402
from bot.core.service import SongService  # noqa: E402
from engine.main import build_worker  # noqa: E402
from engine.protocol import GeneratedTrack  # noqa: E402
from storage.contract.types import DeliveryTarget, UserRef  # noqa: E402
from storage.settings import Settings  # noqa: E402


class Silence:
    """A backend that costs nothing: the service's own overhead is what remains."""

    name = "silence"
    max_batch = 1
    plans_ahead = False

    def plan(self, batch, progress):  # type: ignore[no-untyped-def]
        return batch

    def generate(self, batch, progress):  # type: ignore[no-untyped-def]
        return [
            GeneratedTrack(
                job_id=r.job_id,
                audio=np.zeros((int(r.spec.duration_s * 48_000), 2), np.float32),
                seed=r.seed,
                title="bench",
                caption=r.spec.caption,
                lyrics="",
            )
            for r in batch
        ]


class NullMessenger:
    """Delivers into the void, counting results."""

    platform = "bench"

    def __init__(self) -> None:
        self.results = 0

    async def show_status(self, delivery, text):  # type: ignore[no-untyped-def]
        return None

    async def send_result(self, delivery, result):  # type: ignore[no-untyped-def]
        self.results += 1

    async def send_error(self, delivery, text):  # type: ignore[no-untyped-def]
        raise RuntimeError(text)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


async def run(jobs: int, seconds: int, folder: Path) -> dict[str, object]:
    settings = Settings(
        _env_file=None,
        data_dir=folder,
        engine_backend="sketch",
        max_pending_per_user=jobs,
        daily_quota=0,
        status_edit_interval_s=0.0,
    )  # type: ignore[call-arg]
    service = SongService.from_settings(settings)
    worker = build_worker(settings, migrate=False)
    worker.generator = Silence()
    loop = DeliveryLoop(service)
    messenger = NullMessenger()
    loop.register(messenger)
    submit, engine_pass, delivery_pass = [], [], []
    for i in range(jobs):
        start = time.perf_counter()
        await service.submit_song(
            UserRef("bench", str(i % 50)), SongRequest("bench", duration_s=seconds), DeliveryTarget("bench", str(i))
        )
        submit.append(time.perf_counter() - start)
    for _ in range(jobs):
        start = time.perf_counter()
        worker.run_once()
        engine_pass.append(time.perf_counter() - start)
    while messenger.results < jobs:
        start = time.perf_counter()
        handled = await loop.run_once()
        delivery_pass.append((time.perf_counter() - start) / max(handled, 1))
    return {
        "jobs": jobs,
        "song_seconds": seconds,
        "submit": percentiles(submit),
        "engine_per_job_without_model": percentiles(engine_pass),
        "delivery_per_job": percentiles(delivery_pass),
    }


def main() -> int:
    if "--full-size" in sys.argv or "--tiny" in sys.argv:
        return load_main(sys.argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(run(args.jobs, args.seconds, Path(folder)))
    result["database"] = "sqlite (file, WAL)"
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
