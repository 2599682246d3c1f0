"""What exact batches cost, and what they buy; prints JSON lines (bench/records.py): setup, time, compare.

    python bench/exact.py                                  # tiny random set, CPU
    python bench/exact.py --full-size --batch 8 --seconds 60   # official 2B config, random bf16 weights, GPU

The same batch of songs (lengths, captions and lyrics that differ, so that the batched path pads)
runs twice on the same models: exact (ENGINE_EXACT_BATCHES=true, every track in calls of its own)
and batched (one call per stage, key-padding masks). For each: the whole time and the DiT + VAE time
(from the end of the first conditioning to the last decoded song; synchronized on CUDA), best of
``--repeats``. Then the first song alone is compared with the same song inside each batch:
bit-identical or not, and the SNR in dB (null when identical). The issue's target: exactness costs
under 15 % of DiT + VAE time at batch 8.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.engine import LYRICS, full_size_pipeline, tiny_pipeline  # noqa: E402
from bench.records import record  # noqa: E402
from engine.acestep.backend import pick_device  # noqa: E402
from engine.acestep.pipeline import AceStepPipeline, Track  # noqa: E402
from engine.acestep.text import Metas  # noqa: E402

TARGET_COST_PCT = 15.0


def main() -> None:
    """Build the pipeline, time both paths on one batch, compare a song alone and batched (JSON lines)."""
    args = parse_args()
    device, dtype = pick_device(args.device)
    if args.full_size and device.type != "cuda":
        raise SystemExit("--full-size needs a GPU.")
    pipeline = full_size_pipeline(device, dtype) if args.full_size else tiny_pipeline(device, dtype)
    record(
        "setup",
        model="official 2B turbo, VAE and Qwen3-0.6B configs" if args.full_size else "tiny random set",
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        dtype=str(dtype).removeprefix("torch."),
        batch=args.batch,
        song_seconds=args.seconds,
        target_cost_pct=TARGET_COST_PCT,
    )
    tracks = make_batch(args.batch, args.seconds)
    for mode in ("exact", "batched"):
        record("time", mode=mode, **best_time(pipeline, tracks, mode == "exact", device, args))
    pipeline.exact = True
    alone = pipeline.generate(tracks[:1])[0]
    for mode in ("exact", "batched"):
        pipeline.exact = mode == "exact"
        inside = pipeline.generate(tracks)[0]
        record("compare", mode=mode, bit_identical=bool(np.array_equal(alone, inside)), snr_db=snr_db(alone, inside))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-size", action="store_true", help="official 2B config, random weights (GPU)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="the first song's length; others vary around it")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per path; the best counts")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per path first")
    return parser.parse_args()


def make_batch(batch: int, seconds: float) -> list[Track]:
    """Songs whose lengths, captions and lyrics differ, as a real batch's do."""
    tracks = []
    for i in range(batch):
        caption = "an upbeat synth-pop anthem" + ", with shimmering arpeggios" * (i % 3)
        lyrics = "[Verse]\n" + "walking down the empty street\n" * (2 + 3 * (i % 4))
        length = max(10.0, seconds * (1.0 - 0.1 * (i % 4)))
        tracks.append(Track(caption, lyrics if i % 4 else LYRICS, "en", Metas(bpm=120, duration_s=length), 100 + i))
    return tracks


def best_time(
    pipeline: AceStepPipeline, tracks: list[Track], exact: bool, device: torch.device, args: argparse.Namespace
) -> dict[str, float | None]:
    """Best of ``args.repeats`` runs: the whole call and its DiT + VAE part; the first warm-up's time too."""
    pipeline.exact = exact
    warmups = [timed(pipeline, tracks, device) for _ in range(args.warmup)]
    runs = [timed(pipeline, tracks, device) for _ in range(max(1, args.repeats))]
    return {
        "first_run_s": warmups[0][0] if warmups else None,  # cold kernels and shapes: what a warm-up costs
        "total_s": min(r[0] for r in runs),
        "dit_vae_s": min(r[1] for r in runs),
    }


def timed(pipeline: AceStepPipeline, tracks: list[Track], device: torch.device) -> tuple[float, float]:
    """(whole call, from the first conditioning's end to the last song decoded), in seconds."""

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    marks: list[tuple[str, float, float]] = []
    start = now()
    pipeline.generate(tracks, lambda stage, pct: marks.append((stage, pct, now())))
    end = now()
    encoded = next(t for stage, pct, t in marks if stage == "encoding" and pct >= 100.0)
    return round(end - start, 4), round(end - encoded, 4)


def snr_db(reference: Any, other: Any) -> float | None:
    """10·log10(signal / difference) in dB; None when the two are identical (infinite SNR)."""
    if not isinstance(reference, np.ndarray) or not isinstance(other, np.ndarray):
        return None
    noise = float(np.sum((reference.astype(np.float64) - other) ** 2))
    if noise == 0.0:
        return None
    return round(10.0 * math.log10(float(np.sum(reference.astype(np.float64) ** 2)) / noise), 1)


if __name__ == "__main__":
    main()
