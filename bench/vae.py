"""VAE decode of a batch of songs: diffusers as loaded vs the engine's fast VAE. Prints JSON lines (bench/records.py).

    python bench/vae.py --channels 8 --seconds 90   # CPU, reduced width, 8 songs of 90 s
    python bench/vae.py --full-size --seconds 180   # official config, GPU, bf16

The baseline is ``AutoencoderOobleck`` as diffusers builds it (weight-norm hooks recomputing every
weight per call, five-op Snake) with the engine's former tiling (64 frames of overlap). The fast VAE
folds weight norm, uses FastSnake (fused on CUDA), 16 frames of overlap and one tile width. Weights
are random: speed does not depend on them. ``max_abs_diff`` compares the two decodes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from bench.facts import CONFIGS  # noqa: E402
from bench.records import record  # noqa: E402
from engine.acestep.backend import pick_device  # noqa: E402
from engine.acestep.vae import Vae  # noqa: E402


def build(channels: int | None, seed: int = 0) -> torch.nn.Module:
    from diffusers import AutoencoderOobleck

    config = json.loads((CONFIGS / "vae" / "config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    if channels is not None:
        config["decoder_channels"] = channels
    torch.manual_seed(seed)
    model = AutoencoderOobleck(**config)
    with torch.no_grad():
        for module in model.modules():  # non-trivial Snake parameters (they are zeros at init)
            if type(module).__name__ == "Snake1d":
                module.alpha.normal_(0, 0.3)
                module.beta.normal_(0, 0.3)
    return model.eval()


def timed(vae: Vae, latents: list[torch.Tensor], warmup: int) -> tuple[float, list[torch.Tensor], float | None]:
    """Decode ``latents`` after ``warmup`` untimed runs: (seconds, the decodes, the first warm-up's seconds)."""
    first = None
    for _ in range(warmup):
        began = synchronized(vae)
        vae.decode_many(latents, on_device=True)
        first = first if first is not None else round(synchronized(vae) - began, 3)
    began = synchronized(vae)
    out = vae.decode_many(latents, on_device=True)
    return synchronized(vae) - began, out, first


def synchronized(vae: Vae) -> float:
    """The clock, once the device has finished its work."""
    if vae.device.type == "cuda":
        torch.cuda.synchronize(vae.device)
    return time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full-size", action="store_true", help="the official decoder width (128 channels)")
    parser.add_argument("--channels", type=int, default=8, help="decoder_channels when not --full-size")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first (default: 1 on CUDA, 0 on CPU)")
    args = parser.parse_args()
    device, dtype = pick_device(args.device)
    warmup = args.warmup if args.warmup is not None else int(device.type == "cuda")
    channels = None if args.full_size else args.channels
    baseline = Vae(build(channels), device, dtype, fast=False)  # the same seed: the same weights
    baseline.decode_tile = (512, 64)
    fast = Vae(build(channels), device, dtype)
    frames = round(args.seconds * 25)
    gen = torch.Generator().manual_seed(1)
    latents = [torch.randn(64, frames, generator=gen) for _ in range(args.batch)]
    record(
        "setup",
        bench="vae",
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        dtype=str(dtype).removeprefix("torch."),
        decoder_channels=128 if args.full_size else args.channels,
        batch=args.batch,
        song_seconds=args.seconds,
        tiles_per_call=fast.tiles_per_call,
        torch_threads=torch.get_num_threads(),
    )
    with torch.no_grad():
        fast_s, fast_out, first = timed(fast, latents, warmup)  # ours first: the suite's figure
        record("decode", variant="fast", seconds=round(fast_s, 3), first_run_s=first)
        base_s, base_out, first = timed(baseline, latents, warmup)
        record("decode", variant="baseline", seconds=round(base_s, 3), first_run_s=first)
    diff = max(float((a - b).abs().max()) for a, b in zip(base_out, fast_out, strict=True))
    record("compare", speedup=round(base_s / fast_s, 2), max_abs_diff=diff)
    return 0


if __name__ == "__main__":
    sys.exit(main())
