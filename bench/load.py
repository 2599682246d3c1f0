"""The whole service under load (``bench/service.py --full-size`` or ``--tiny``); see bench/service.py.

Prints JSON lines (bench/records.py) as the run goes: ``setup``, ``saturation`` (songs per hour),
``half_load`` (p50 and p95 submit → delivered), ``end`` (failures, stage times), so that a time limit
keeps the figures already measured.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.facts import CONFIGS
from bench.records import record
from bot.core.delivery import DeliveryLoop
from bot.core.parser import SongRequest
from bot.core.service import SongService
from engine.main import build_worker
from engine.worker import Worker
from storage.contract.types import DeliveryTarget, UserRef
from storage.settings import Settings

CAPTION = "an upbeat synth-pop anthem with shimmering arpeggios"


class Clock:
    """Intervals per stage, from any thread."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, began: float, ended: float) -> None:
        with self._lock:
            self.spans.setdefault(stage, []).append((began, ended))

    def timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, began, time.perf_counter())

        return wrapper

    def busy(self, stages: tuple[str, ...], start: float, end: float) -> float:
        """Seconds within [start, end] when any of ``stages`` ran (overlaps counted once)."""
        spans = sorted((max(a, start), min(b, end)) for s in stages for a, b in self.spans.get(s, []) if b > start)
        total, reach = 0.0, start
        for a, b in spans:
            if b > reach:
                total += b - max(a, reach)
                reach = b
        return total

    def summary(self) -> dict[str, Any]:
        out = {}
        for stage, spans in sorted(self.spans.items()):
            lengths = [b - a for a, b in spans]
            out[stage] = {
                "count": len(lengths),
                "mean_s": round(statistics.fmean(lengths), 3),
                "max_s": round(max(lengths), 3),
            }
        return out


def instrument(worker: Worker, clock: Clock) -> None:
    """Time planning, generation (split into DiT and VAE by its progress reports) and each encode."""
    generator = worker.generator
    if hasattr(generator, "plan"):
        generator.plan = clock.timed("plan", generator.plan)  # type: ignore[method-assign]
    inner_generate = generator.generate

    def generate(batch: list[Any], progress: Callable[..., None]) -> Any:
        marks: dict[str, float] = {"start": time.perf_counter()}

        def report(job_id: int | None, stage: str, percent: float) -> None:
            now = time.perf_counter()
            if stage == "generating":
                marks.setdefault("dit_start", now)
                if percent >= 100:
                    marks["dit_end"] = now
            progress(job_id, stage, percent)

        result = inner_generate(batch, report)
        end = time.perf_counter()
        clock.add("generate", marks["start"], end)
        if "dit_start" in marks and "dit_end" in marks:
            clock.add("conditioning", marks["start"], marks["dit_start"])
            clock.add("dit", marks["dit_start"], marks["dit_end"])
            clock.add("vae_and_copy", marks["dit_end"], end)
        return result

    generator.generate = generate  # type: ignore[method-assign]
    inner_submit = worker.encoder.submit

    def submit(*args: Any) -> Any:
        began = time.perf_counter()
        future = inner_submit(*args)
        future.add_done_callback(lambda _: clock.add("encode", began, time.perf_counter()))
        return future

    worker.encoder.submit = submit  # type: ignore[method-assign]


class Timing:
    """A messenger that notes when each job's result is delivered."""

    platform = "bench"

    def __init__(self) -> None:
        self.delivered: dict[int, float] = {}
        self.failed: dict[int, str] = {}

    async def show_status(self, delivery: Any, text: str) -> None:
        return None

    async def send_result(self, delivery: Any, result: Any) -> None:
        self.delivered[delivery.job_id] = time.perf_counter()

    async def send_error(self, delivery: Any, text: str) -> None:
        self.failed[delivery.job_id] = text


def full_size_generator(max_batch: int) -> Any:
    """The official DiT, VAE, text encoder and 1.7B LM planner, random bf16 weights, on the GPU."""
    import torch

    from bench.engine import full_size_pipeline
    from engine.acestep.backend import AceStepGenerator, pick_device

    device, dtype = pick_device("auto")
    if device.type != "cuda":
        raise SystemExit("--full-size needs a GPU; --tiny runs the same service with tiny models on the CPU.")
    pipeline = full_size_pipeline(device, dtype)
    planner = full_size_planner(str(device))
    torch.cuda.empty_cache()
    return AceStepGenerator.from_parts(pipeline, planner, max_batch)


# Tokens of free text a real plan holds: a caption of two sentences, a few genres, two verses and a chorus.
BENCH_BUDGETS = {"caption_max": 80, "genres_max": 12, "lyrics_max": 400}


def full_size_planner(device: str, geometry: dict[str, Any] | None = None) -> Any:
    """The planner around a random 1.7B LM: the tiny LM's tokenizer and template, the official geometry.

    Random weights never end free text by themselves, so caption, genres and lyrics are held to the lengths
    a real plan has (``BENCH_BUDGETS``: about what the official LM writes for a 3-minute song), not to the
    planner's maxima; the audio codes are the real count (5 per second).
    ``geometry`` overrides config keys (a test builds a small model this way on the CPU).
    On CUDA it plans on the fast path (static cache, CUDA graphs), as ``Planner.load`` does there.
    """
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from engine.acestep.lm.budget import PlannerSettings
    from engine.acestep.lm.constraints import Vocab
    from engine.acestep.lm.model import load_lm
    from engine.acestep.lm.planner import Planner
    from engine.acestep.lm.tiny import make_tiny_lm

    lm = load_lm(make_tiny_lm(Path(tempfile.mkdtemp(prefix="songbot-bench-lm-"))), "cpu")
    config = json.loads((CONFIGS / "acestep-5Hz-lm-1.7B" / "config.json").read_text())
    config = {k: v for k, v in config.items() if k not in ("architectures", "dtype", "layer_types")}
    config.update(geometry or {})  # tests shrink the layers; the vocabulary stays the official one
    qconfig = Qwen3Config(**config)
    qconfig._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen3ForCausalLM(qconfig).to(torch.bfloat16 if device.startswith("cuda") else torch.float32).eval()
    lm = dataclasses.replace(lm, model=model, config=config, device=device)
    settings = PlannerSettings(**BENCH_BUDGETS)
    vocab = Vocab.build(lm.tokenizer, int(config["vocab_size"]), duration_max=settings.duration_max)
    planner = Planner(lm=lm, vocab=vocab, settings=settings)
    if device.startswith("cuda"):
        planner.use_fast_path()  # as Planner.load does on CUDA: the reference loop would take minutes a batch
    return planner


def tiny_generator(max_batch: int) -> Any:
    """The tiny random checkpoint set (DiT, VAE, text encoder, LM), written and loaded like real ones."""
    from engine.acestep.backend import AceStepGenerator
    from engine.acestep.tiny import make_tiny

    folder = Path(tempfile.mkdtemp(prefix="songbot-bench-tiny-"))
    make_tiny(folder)
    generator = AceStepGenerator(folder, device="cpu", max_batch=max_batch, lm_model="acestep-5Hz-lm-0.6B")
    generator.planner.use_fast_path()  # the planner path the GPU run takes (eager steps on the CPU)
    return generator


def database(url: str | None) -> tuple[str, str, Callable[[], None]]:
    """(database_url for Settings, its name, cleanup): a fresh PostgreSQL schema when ``url`` answers, else SQLite."""
    if not url:
        return "", "sqlite (file, WAL)", lambda: None
    try:
        from storage.db import make_engine

        schema = f"bench_service_{uuid.uuid4().hex[:8]}"
        server = make_engine(url)
        with server.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except Exception as error:  # noqa: BLE001 - the bench falls back and says so
        return "", f"sqlite (file, WAL); postgresql did not answer: {type(error).__name__}", lambda: None

    def drop() -> None:
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")

    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", "postgresql", drop


async def run_load(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    db_url, db_name, drop = database(args.database_url)
    try:
        return await _run_load(args, folder, db_url, db_name)
    finally:
        drop()


async def _run_load(args: argparse.Namespace, folder: Path, db_url: str, db_name: str) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,
        data_dir=folder,
        database_url=db_url,
        engine_backend="sketch",  # type: ignore[call-arg]
        engine_max_batch=args.batch,
        engine_encode_processes=args.encoders,
        engine_lease_s=120.0,
        engine_poll_s=0.05,
        delivery_poll_s=0.05,
        status_edit_interval_s=60.0,
        max_pending_per_user=1000,
        daily_quota=0,
        max_queued_total=100_000,
        max_duration_s=max(240, int(args.seconds)),
    )
    service = SongService.from_settings(settings)
    worker = build_worker(settings, migrate=False)
    built = time.perf_counter()
    worker.generator = full_size_generator(args.batch) if args.full_size else tiny_generator(args.batch)
    build_s = time.perf_counter() - built
    compiled = worker.generator.pipeline.compile_decoder() if args.compile else False
    clock = Clock()
    instrument(worker, clock)
    messenger = Timing()
    delivery = DeliveryLoop(service)
    delivery.register(messenger)
    engine = threading.Thread(target=worker.run, name="bench-engine", daemon=True)
    engine.start()
    submitted: dict[int, float] = {}
    users = iter(range(10**9))

    async def submit() -> None:
        i = next(users)
        job = await service.submit_song(
            UserRef("bench", f"user{i}"),
            SongRequest(CAPTION, duration_s=int(args.seconds), seed=i),
            DeliveryTarget("bench", f"chat{i}"),
        )
        submitted[job.id] = time.perf_counter()

    async def deliver_until(ids: list[int], deadline: float) -> None:
        while time.perf_counter() < deadline:
            await delivery.run_once()
            if all(i in messenger.delivered or i in messenger.failed for i in ids):
                return
            await asyncio.sleep(0.05)

    record(
        "setup",
        bench="service_load",
        mode="full-size" if args.full_size else "tiny",
        device=device_name(args.full_size),
        database=db_name,
        song_seconds=args.seconds,
        max_batch=args.batch,
        encode_processes=args.encoders,
        model_build_s=round(build_s, 1),
        dit_compiled=compiled,
        planner="fast" if getattr(worker.generator.planner, "fast", None) is not None else "reference",
    )
    deadline = time.perf_counter() + args.deadline_s
    try:
        began = time.perf_counter()
        for _ in range(args.songs):
            await submit()
        first = list(submitted)
        await deliver_until(first, deadline)
        saturation = saturation_report(first, messenger, args.batch, began, clock)
        record("saturation", **saturation, failed=len(messenger.failed))
        half = half_load(saturation.get("songs_per_hour"), args)
        second_start = time.perf_counter()
        rng = random.Random(7)
        if half:
            rate = half / 3600.0
            at = second_start
            while True:
                at += rng.expovariate(rate)
                if at > second_start + args.load_s or at > deadline:
                    break
                while time.perf_counter() < at:
                    await delivery.run_once()
                    await asyncio.sleep(min(0.05, max(0.0, at - time.perf_counter())))
                await submit()
        second = [i for i in submitted if i not in first]
        await deliver_until(second, deadline)
        latencies = sorted(messenger.delivered[i] - submitted[i] for i in second if i in messenger.delivered)
        record("half_load", **half_load_report(half, len(second), latencies))
    finally:
        worker.stop()
        engine.join(15)  # a plan in progress may not end soon; the thread is a daemon and the records come first
    stages = clock.summary()
    result: dict[str, Any] = {
        "failed": len(messenger.failed),
        "failures": sorted(set(messenger.failed.values()))[:3],
        "engine_stopped_cleanly": not engine.is_alive(),
        "stages": stages,
    }
    if "encode" in stages:
        # Submit to done: encoding plus any wait for a free process.
        result["encode_wall_x_realtime"] = round(args.seconds / stages["encode"]["mean_s"], 1)
    return result


def device_name(full_size: bool) -> str:
    """The GPU's name in full-size mode, else ``cpu``."""
    if not full_size:
        return "cpu"
    import torch

    return torch.cuda.get_device_name()


def half_load_report(half: float | None, submitted: int, latencies: list[float]) -> dict[str, Any]:
    """Submit → delivered at half the saturation rate: p50 and p95 of the songs delivered."""
    return {
        "half_load_songs_per_hour": half,
        "half_load_submitted": submitted,
        "half_load_delivered": len(latencies),
        "p50_s_half_load": round(statistics.median(latencies), 2) if latencies else None,
        "p95_s_half_load": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 2)
        if latencies
        else None,
    }


def saturation_report(ids: list[int], messenger: Timing, batch: int, began: float, clock: Clock) -> dict[str, Any]:
    """Songs per hour once the pipeline is full: from the first batch's last delivery to the last one."""
    times = sorted(messenger.delivered[i] for i in ids if i in messenger.delivered)
    out: dict[str, Any] = {"saturation_songs": len(ids), "saturation_delivered": len(times)}
    if len(times) <= batch:
        out["songs_per_hour"] = None
        return out
    warm = times[batch - 1]
    rate = (len(times) - batch) / (times[-1] - warm)
    busy = clock.busy(("plan", "generate"), warm, times[-1])
    out.update(
        {
            "songs_per_hour": round(rate * 3600),
            "saturation_window_s": round(times[-1] - warm, 2),
            "first_batch_delivered_s": round(warm - began, 2),
            "gpu_busy_share": round(busy / (times[-1] - warm), 3),
            "generate_busy_share": round(clock.busy(("generate",), warm, times[-1]) / (times[-1] - warm), 3),
        }
    )
    return out


def half_load(songs_per_hour: float | None, args: argparse.Namespace) -> float | None:
    return None if not songs_per_hour else round(songs_per_hour / 2, 1)


def load_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="the whole service under load")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--full-size", action="store_true", help="official sizes, random bf16 weights (GPU)")
    mode.add_argument("--tiny", action="store_true", help="tiny random models on the CPU (a smoke run)")
    parser.add_argument("--songs", type=int, default=None, help="songs submitted at once (default 4 batches)")
    parser.add_argument("--seconds", type=float, default=None, help="song length (default 180; tiny 10)")
    parser.add_argument("--batch", type=int, default=None, help="ENGINE_MAX_BATCH (default 8; tiny 2)")
    parser.add_argument("--encoders", type=int, default=None, help="ENGINE_ENCODE_PROCESSES (default 6; tiny 1)")
    parser.add_argument("--load-s", type=float, default=None, help="seconds of half-load arrivals (60; tiny 10)")
    parser.add_argument("--deadline-s", type=float, default=240.0, help="stop waiting for deliveries after this")
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL to try before SQLite")
    parser.add_argument("--compile", action="store_true", help="torch.compile the DiT layers (CUDA)")
    args = parser.parse_args(argv)
    full = args.full_size
    args.batch = args.batch or (8 if full else 2)
    args.songs = args.songs or 4 * args.batch
    args.seconds = args.seconds or (180.0 if full else 10.0)
    args.encoders = args.encoders if args.encoders is not None else (6 if full else 1)
    args.load_s = args.load_s if args.load_s is not None else (60.0 if full else 10.0)
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(run_load(args, Path(folder)))
    record("end", **result)
    return 0
