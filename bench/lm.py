"""Decode speed of the 5 Hz LM planner on the fast path; prints JSON lines (bench/records.py), one per case.

    python bench/lm.py --small                      # tiny geometry on the CPU (a smoke test, seconds)
    python bench/lm.py --full-size                  # acestep-5Hz-lm-1.7B geometry, random bf16 weights, CUDA
    python bench/lm.py --full-size --geometry 4B    # or 0.6B

Code phase: for each batch size (1, 8, 32, 64) with and without classifier-free guidance,
every request decodes ``--tokens`` audio codes under the real constraint (codes only,
end-of-sequence exactly at the target). Metadata phase: create-sample requests (the YAML
state machine, then free lyrics) at batch 1 and 8, and chain-of-thought requests (guided) at
batch 1. Describe (`/describe`, understand mode): a recording's codes as the prompt (``--describe-s``
seconds of them, 180 by default, 10 small), then the metadata and lyrics at temperature 0.3 without
guidance, batch 1: its decode tokens per second is ``lm.describe_b1_tok_s`` (target: 150, the official
app's 145-161 in tests/data/understand_log_README.md). Each case runs twice; the second run is timed (the
first captures the CUDA graphs: its time is ``first_run_s``). The cases that give the suite's figures run
first, so a time limit keeps them.
Speed does not depend on the weights, so the full-size run uses random ones built directly
(no ``transformers`` model is needed, so any transformers version works).

Reported: tokens per second per request and in total (guided rows are not counted twice), and
the GPU's busy share: the GPU time inside the step graphs (CUDA events around each replay)
over the wall time. ``--check`` also compares, on CUDA, the tokens of graph replays with eager
steps and with the reference loop (tiny model, float32).
Records: ``setup``, ``kernels`` (one 1.7B guided code step's dispatches on the meta device, from
engine/acestep/kernels.py; null where that module is absent), one ``case`` per phase and batch, then
``summary`` (``lm.b1_cfg_tok_s``, ``lm.b32_cfg_tok_s_total``, ``lm.meta_b1_tok_s``, ``lm.describe_b1_tok_s``...)
and ``check``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from bench.facts import CONFIGS  # noqa: E402
from bench.records import kernels_per_step, record  # noqa: E402
from engine.acestep.lm.constraints import FIELD_ORDER, Constraint, Spec, Vocab  # noqa: E402
from engine.acestep.lm.decode import DecodeJob, decode  # noqa: E402
from engine.acestep.lm.fast_engine import FastEngine  # noqa: E402
from engine.acestep.lm.qwen3 import FastLM, Geometry  # noqa: E402
from engine.acestep.lm.tiny import TINY_SHAPE, tiny_config  # noqa: E402
from engine.acestep.lm.tokenizer import build_tiny_tokenizer  # noqa: E402


def checkpoint_config(geometry: str) -> dict[str, Any]:
    """The official ``config.json`` of ``acestep-5Hz-lm-<geometry>`` (kept in the repository's test data).

    ``layer_types`` is dropped when its length does not match ``num_hidden_layers`` (transformers 5
    refuses such a config; our own forward does not read it).
    """
    config = json.loads((CONFIGS / f"acestep-5Hz-lm-{geometry}" / "config.json").read_text())
    if len(config.get("layer_types") or []) != config["num_hidden_layers"]:
        config.pop("layer_types", None)
    return config


def build(args: argparse.Namespace) -> tuple[FastLM, Vocab, dict[str, Any], str]:
    """The model (random weights), the token tables and the config."""
    tok = build_tiny_tokenizer()  # supplies the special, code and YAML tokens; the width comes from the config
    if args.small:
        config = tiny_config(tok.get_vocab_size(), 0, 0)
        dtype = torch.float32
        name = "tiny random LM (" + ", ".join(f"{k}={v}" for k, v in TINY_SHAPE.items()) + "), fp32"
    else:
        config = checkpoint_config(args.geometry)
        dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
        name = f"acestep-5Hz-lm-{args.geometry} geometry, random {str(dtype).removeprefix('torch.')}"
    geo = Geometry.from_config(config)
    lm = FastLM.random(geo, args.device, dtype)
    return lm, Vocab.build(tok, geo.vocab), config, name


def code_jobs(vocab: Vocab, batch: int, guided: bool, tokens: int) -> list[DecodeJob]:
    prompt = [vocab.think_open, vocab.newline] * 32  # a 64-token prompt; its content does not matter
    uncond = [vocab.newline] * 48
    return [
        DecodeJob(
            prompt,
            Constraint(vocab, Spec("codes", target_codes=tokens)),
            seed,
            uncond if guided else None,
            2.0 if guided else 1.0,
            0.85,
            0.9,
            tokens + 1,
            phase=1,
        )
        for seed in range(batch)
    ]


def meta_jobs(vocab: Vocab, batch: int, guided: bool, caps: tuple[int, int, int]) -> list[DecodeJob]:
    """Create-sample requests (metadata then lyrics), or guided chain-of-thought ones (metadata only)."""
    caption, genres, lyrics = caps
    prompt = [vocab.newline] * 80
    uncond = [vocab.newline] * 60
    if guided:
        spec = Spec(
            "meta",
            fields=("bpm", "caption", "duration", "keyscale", "language", "timesignature"),
            caption_max=caption,
            duration_max=120,
        )
    else:
        spec = Spec(
            "meta_text", fields=FIELD_ORDER, caption_max=caption, genres_max=genres, text_max=lyrics, duration_max=120
        )
    return [
        DecodeJob(
            prompt,
            Constraint(vocab, spec),
            seed,
            uncond if guided else None,
            2.0 if guided else 1.0,
            0.85,
            0.9,
            caption + genres + lyrics + 200,
            phase=0,
        )
        for seed in range(batch)
    ]


def describe_jobs(vocab: Vocab, batch: int, seconds: int, caps: tuple[int, int, int]) -> list[DecodeJob]:
    """Understand-mode requests: `seconds` of audio codes read, then metadata and free lyrics (no guidance).

    As `engine.acestep.lm.planner.understand`: all seven fields, the recording's length given, temperature
    0.3. The prompt is the codes only (the chat template's few tokens around them do not change the speed).
    """
    caption, genres, lyrics = caps
    prompt = [vocab.code0 + (7919 * n) % 64000 for n in range(5 * seconds)]
    spec = Spec(
        "meta_text",
        fields=FIELD_ORDER,
        given={"duration": seconds},
        caption_max=caption,
        genres_max=genres,
        text_max=lyrics,
        duration_max=max(seconds, 10),
    )
    return [
        DecodeJob(prompt, Constraint(vocab, spec), seed, None, 1.0, 0.3, 0.9, caption + genres + lyrics + 200, phase=0)
        for seed in range(batch)
    ]


def timed(engine: FastEngine, make: Any, phase: str, cuda: bool) -> tuple[float, list[list[int]], float, float]:
    """Run ``make()``'s jobs twice; time the second run. Returns (seconds, tokens, GPU busy ms, first run's s)."""
    began = time.perf_counter()
    engine.decode(make(), phase)  # warm-up: graph capture, allocator (its time is what a capture costs)
    first = time.perf_counter() - began
    graphs = [d.graphs for d in engine.decoders.values()]
    for g in graphs:
        g.events = [] if cuda else None
    jobs = make()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    engine.decode(jobs, phase)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    busy = sum(g.busy_ms() for g in graphs) if cuda else 0.0
    for g in graphs:
        g.events = None
    return seconds, [j.tokens for j in jobs], busy, first


def case(engine: FastEngine, phase: str, batch: int, guided: bool, make: Any, cuda: bool) -> dict[str, Any]:
    seconds, tokens, busy, first = timed(engine, make, phase, cuda)
    per_request = sum(len(t) for t in tokens) / batch
    row = {
        "phase": phase,
        "batch": batch,
        "guidance": guided,
        "tokens_per_request": round(per_request, 1),
        "seconds": round(seconds, 3),
        "tok_s_per_request": round(per_request / seconds, 1),
        "tok_s_total": round(batch * per_request / seconds, 1),
        "ms_per_step": round(1000 * seconds / max(len(t) for t in tokens), 3),
        "first_run_s": round(first, 3),
    }
    if cuda:
        row["gpu_busy_share"] = round(busy / (1000 * seconds), 3)
    return row


def check(args: argparse.Namespace, lm: FastLM, vocab: Vocab) -> dict[str, Any]:
    """CUDA only: graph replays against eager steps (same model), and the fast path against the reference."""
    out: dict[str, Any] = {}
    for phase, make in (
        ("codes", lambda: code_jobs(vocab, 4, True, 48)),
        ("meta", lambda: meta_jobs(vocab, 3, False, (24, 6, 24))),
    ):
        with_graphs = FastEngine(lm, vocab, graphs=True).decode(make(), phase)
        eager = FastEngine(lm, vocab, graphs=False).decode(make(), phase)
        out[f"{phase}_graphs_equal_eager"] = with_graphs == eager
    # The tiny model in float32: the CUDA fast path against the reference loop on the CPU.
    from engine.acestep.lm.planner import Planner, PlannerSettings, PlanRequest
    from engine.acestep.lm.tiny import make_tiny_lm

    root = Path(tempfile.mkdtemp(prefix="songbot-bench-lm-"))
    make_tiny_lm(root)
    settings = PlannerSettings(duration_max=20, caption_max=24, genres_max=6, lyrics_max=24)
    requests = [PlanRequest("a sad folk song about trains", seed=s, duration=10 + s) for s in range(4)]
    cpu = Planner.load(root, "acestep-5Hz-lm-0.6B", "cpu", replace(settings, decoder="reference"))
    gpu = Planner.load(root, "acestep-5Hz-lm-0.6B", args.device, replace(settings, decoder="fast"))
    gpu.lm.model.float()
    gpu.use_fast_path()
    gpu.fast.lm = FastLM.from_hf(gpu.lm.model, gpu.lm.config)
    gpu.fast.decoders.clear()
    a, b = cpu.plan(requests), gpu.plan(requests)
    same = [
        sum(x == y for x, y in zip(p.audio_codes, q.audio_codes, strict=False)) / len(p.audio_codes)
        for p, q in zip(a, b, strict=True)
    ]
    out["tiny_fp32_cuda_plans_equal_cpu_reference"] = [p == q for p, q in zip(a, b, strict=True)]
    out["tiny_fp32_cuda_code_agreement"] = [round(s, 4) for s in same]
    return out


def reference_case(lm_config: dict[str, Any], vocab: Vocab, device: str, tokens: int) -> dict[str, Any]:
    """The reference loop (``transformers`` model, dynamic cache) at batch 1 with guidance, for comparison."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = {k: v for k, v in lm_config.items() if k not in ("architectures", "dtype", "torch_dtype")}
    qconfig = Qwen3Config(**config)
    qconfig._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen3ForCausalLM(qconfig).to(torch.bfloat16 if device.startswith("cuda") else torch.float32).eval()
    decode(model, code_jobs(vocab, 1, True, 8), vocab.pad, device)
    jobs = code_jobs(vocab, 1, True, tokens)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    decode(model, jobs, vocab.pad, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "phase": "codes",
        "loop": "reference",
        "batch": 1,
        "guidance": True,
        "tok_s_per_request": round((tokens + 1) / seconds, 1),
    }


def cpu_name() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full-size", action="store_true", help="a real checkpoint geometry, random weights (GPU)")
    size.add_argument("--small", action="store_true", help="tiny geometry: a CPU smoke test in seconds")
    parser.add_argument("--geometry", default="1.7B", choices=("0.6B", "1.7B", "4B"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tokens", type=int, default=None, help="codes per request (default 500 full, 24 small)")
    parser.add_argument("--batches", default=None, help="code-phase batch sizes (default 1,8,32,64; small 1,4)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--headline", action="store_true", help="only the four cases gpu-suite.json reports")
    parser.add_argument(
        "--describe-s", type=int, default=None, help="seconds of codes a describe reads (180; small 10)"
    )
    parser.add_argument("--check", action="store_true", help="CUDA: graphs vs eager vs reference tokens")
    parser.add_argument("--reference", action="store_true", help="also time the reference loop at batch 1")
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON lines to this file")
    args = parser.parse_args(argv)
    if not args.full_size:
        args.small = True
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    lm, vocab, config, name = build(args)
    tokens = args.tokens or (24 if args.small else 500)
    batches = [int(b) for b in (args.batches or ("1,4" if args.small else "1,8,32,64")).split(",")]
    caps = (24, 6, 24) if args.small else (160, 32, 320)
    if args.out:
        args.out.write_text("")  # a fresh file: records are appended as they come
    emit = functools.partial(record, out=args.out)
    emit(
        "setup",
        bench="lm_decode",
        model=name,
        device=torch.cuda.get_device_name() if cuda else cpu_name(),
        torch=torch.__version__,
        cuda_graphs=cuda,
        torch_threads=torch.get_num_threads(),
        load_average_1m=round(os.getloadavg()[0], 2),  # the CPU may be shared; read numbers with it
        top_p=0.9,
        temperature=0.85,
        cfg_scale=2.0,
    )
    # One code-phase step of the 1.7B geometry with guidance, counted on the meta device (not timed).
    count = kernels_per_step("lm_step_kernels", geometry="1.7B", batch=1, guidance=True, phase="codes")
    emit("kernels", geometry="1.7B", batch=1, guidance=True, phase="codes", kernels_per_step=count)
    engine = FastEngine(lm, vocab, max_rows=max(batches))
    results = []
    describe_s = args.describe_s or (10 if args.small else 180)
    for phase, b, guided in cases(batches)[: len(HEADLINE) if args.headline else None]:
        if phase == "codes":
            make = functools.partial(code_jobs, vocab, b, guided, tokens)
        elif phase == "describe":
            make = functools.partial(describe_jobs, vocab, b, describe_s, caps)
        else:
            make = functools.partial(meta_jobs, vocab, b, guided, caps)
        row = case(engine, "meta" if phase == "describe" else phase, b, guided, make, cuda)  # a describe is meta
        if phase == "describe":
            row.update(phase=phase, describe_s=describe_s)
        results.append(emit("case", **row))
    if args.reference:
        emit("case", **reference_case(config, vocab, args.device, min(tokens, 100)))
    emit("summary", lm=summary(results))
    if args.check and cuda:
        emit("check", **check(args, lm, vocab))
    return 0


# The cases gpu-suite.json reports, run first: a time limit keeps them.
HEADLINE = (("codes", 1, True), ("meta", 1, False), ("codes", 32, True), ("describe", 1, False))


def cases(batches: list[int]) -> list[tuple[str, int, bool]]:
    """(phase, batch, guided) in the order that matters: the suite's figures first, in case time runs out."""
    first = list(HEADLINE)
    rest = [("codes", b, g) for b in batches for g in (True, False)] + [("meta", 1, True), ("meta", 8, False)]
    ordered = [c for c in first if c[0] != "codes" or c[1] in batches]
    return ordered + [c for c in rest if c not in ordered]


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures (``lm.*`` of gpu-suite.json) from the case records."""

    def find(phase: str, batch: int, guided: bool, key: str) -> float | None:
        for r in results:
            if (r["phase"], r["batch"], r["guidance"]) == (phase, batch, guided) and key in r:
                return r[key]
        return None

    return {
        "b1_cfg_tok_s": find("codes", 1, True, "tok_s_per_request"),
        "b1_tok_s": find("codes", 1, False, "tok_s_per_request"),
        "b32_cfg_tok_s_total": find("codes", 32, True, "tok_s_total"),
        "meta_b1_tok_s": find("meta", 1, False, "tok_s_per_request"),
        "describe_b1_tok_s": find("describe", 1, False, "tok_s_per_request"),
        "meta_b1_cfg_tok_s": find("meta", 1, True, "tok_s_per_request"),
        "b1_cfg_gpu_busy_share": find("codes", 1, True, "gpu_busy_share"),
        "meta_b1_gpu_busy_share": find("meta", 1, False, "gpu_busy_share"),
    }


if __name__ == "__main__":
    sys.exit(main())
