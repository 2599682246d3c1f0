"""House styles: the cost of switching a LoRA style on the DiT decoder, merged vs held beside the weights.

Prints JSON lines (``bench/records.py``): a ``setup`` record, then per config and rank

- ``merge``: the first apply (it also keeps the original weights), a switch to another adapter
  (restore by copy + merge), the restore alone, and whether the restore gave back every weight bit for bit;
- ``side_by_side``: one decoder step without and with the adapter as forward hooks on every targeted
  projection (``y += s · (x Aᵀ) Bᵀ``), and what that costs a song of 8 steps;

then a ``chosen`` record. ``engine/acestep/styles.py`` merges: its switch costs once per style change,
the hooks cost every step of every styled song.

    python bench/styles.py                                   # tiny and mid-size decoders on the CPU
    python bench/styles.py --full-size --device cuda --rank 64 --seconds 60   # the GPU suite's case
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder would come first on the path, and its engine.py would hide the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from bench.records import record  # noqa: E402
from engine.acestep.config import DitConfig  # noqa: E402
from engine.acestep.decoder import DiTDecoder  # noqa: E402
from engine.acestep.styles import TARGETS, Adapter, StyleSwitch, target_modules  # noqa: E402
from engine.acestep.tiny import TINY_DIT  # noqa: E402

STEPS = 8  # turbo sampling
MID_DIT = replace(
    TINY_DIT,
    hidden_size=512,
    intermediate_size=1536,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=64,
    sliding_window=128,
    layer_types=None,
)


def random_decoder(config: DitConfig, device: torch.device, dtype: torch.dtype) -> DiTDecoder:
    """A decoder at ``config`` with N(0, 0.5/√fan_in) weights."""
    torch.manual_seed(0)
    with torch.device(device):  # built where it runs: the 2B decoder's init on a CPU alone takes long
        decoder = DiTDecoder(config).to(dtype)
    with torch.no_grad():
        for param in decoder.parameters():
            if param.dim() >= 2:
                param.normal_(0, 0.5 / math.sqrt(param.numel() // param.shape[0]))
    return decoder.eval().requires_grad_(False)


def random_adapter(decoder: DiTDecoder, rank: int, seed: int) -> Adapter:
    """An adapter on every q/k/v/o projection, as upstream's training targets them."""
    generator = torch.Generator().manual_seed(seed)
    pairs = {}
    for name, linear in target_modules(decoder).items():
        if name.rsplit(".", 1)[-1] in TARGETS:
            a = torch.randn(rank, linear.in_features, generator=generator) / math.sqrt(linear.in_features)
            b = torch.randn(linear.out_features, rank, generator=generator) * 0.01
            pairs[name] = (a, b)
    return Adapter(f"bench{seed}", f"{seed:064x}", rank, 2.0, pairs)


def timed(device: torch.device, action: Callable[[], Any], repeats: int = 1) -> float:
    """Seconds per call of ``action`` (the best of ``repeats``), synchronised on CUDA."""
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        action()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return best


def merge_case(decoder: DiTDecoder, rank: int, device: torch.device, repeats: int) -> dict[str, Any]:
    """First apply, switch and restore times of ``StyleSwitch``; the restore checked bit for bit."""
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    first, second = random_adapter(decoder, rank, 1), random_adapter(decoder, rank, 2)
    switch = StyleSwitch(decoder)
    first_apply = timed(device, lambda: switch.apply(first, 1.0))
    flips = iter([second, first] * repeats)
    switch_s = timed(device, lambda: switch.apply(next(flips), 0.8), repeats)
    restore_s = math.inf
    for _ in range(repeats):
        switch.apply(first, 1.0)
        restore_s = min(restore_s, timed(device, switch.restore))
    exact = all(torch.equal(before[k], v) for k, v in decoder.state_dict().items())
    kept_mb = sum(t.numel() * t.element_size() for t in switch.originals.values()) / 2**20
    return {
        "first_apply_s": first_apply,
        "switch_s": switch_s,
        "restore_s": restore_s,
        "restore_exact": exact,
        "originals_mb": round(kept_mb, 1),
        "modules": len(first.pairs),
    }


def step_inputs(config: DitConfig, frames: int, device: torch.device, dtype: torch.dtype) -> tuple[Any, ...]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, frames, config.audio_acoustic_hidden_dim, generator=generator)
    context = torch.randn(1, frames, config.in_channels - config.audio_acoustic_hidden_dim, generator=generator)
    states = torch.randn(1, 200, config.hidden_size, generator=generator)
    t = torch.tensor([0.5])
    return tuple(v.to(device=device, dtype=dtype) for v in (x, t, context, states))


def side_by_side_case(
    decoder: DiTDecoder, rank: int, frames: int, device: torch.device, dtype: torch.dtype, repeats: int
) -> dict[str, Any]:
    """One decoder step plain and with the adapter as hooks (the cross K/V made once, as in sampling)."""
    x, t, context, states = step_inputs(decoder.config, frames, device, dtype)
    cross = decoder.cross_kv(states)

    def step() -> None:
        with torch.no_grad():
            decoder(x, t, context, cross)

    step()  # warm-up
    plain = timed(device, step, repeats)
    adapter = random_adapter(decoder, rank, 1)
    targets = target_modules(decoder)
    handles = []
    for name, (a, b) in adapter.pairs.items():
        a_dev, b_dev = a.to(device, dtype), b.to(device, dtype)

        def hook(_m: Any, inputs: tuple[torch.Tensor], output: torch.Tensor, a: Any = a_dev, b: Any = b_dev) -> Any:
            return output + (inputs[0] @ a.T) @ b.T * adapter.scaling

        handles.append(targets[name].register_forward_hook(hook))
    step()
    hooked = timed(device, step, repeats)
    for handle in handles:
        handle.remove()
    return {
        "frames": frames,
        "step_s": plain,
        "step_hooked_s": hooked,
        "overhead_pct": 100 * (hooked - plain) / plain,
        "overhead_per_song_s": STEPS * (hooked - plain),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full-size", action="store_true", help="the official decoder geometry (2B turbo)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rank", default="8,64", help="LoRA ranks, comma-separated (upstream's default r is 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="song length for the per-step cost")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    configs = {"full": DitConfig()} if args.full_size else {"tiny": TINY_DIT, "mid": MID_DIT}
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    record("setup", device=name, dtype=str(dtype), threads=torch.get_num_threads(), configs=list(configs))
    frames = round(args.seconds * 25)
    for label, config in configs.items():
        decoder = random_decoder(config, device, dtype)
        for rank in (int(r) for r in args.rank.split(",")):
            record("merge", config=label, rank=rank, **merge_case(decoder, rank, device, args.repeats))
            case = side_by_side_case(decoder, rank, frames, device, dtype, args.repeats)
            record("side_by_side", config=label, rank=rank, **case)
        del decoder
    record("chosen", mode="merge", why="a switch costs once per style change; hooks cost every step of a styled song")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
