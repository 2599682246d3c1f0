"""Decode speed of the 5 Hz LM planner's code phase; prints one JSON object.

    python bench/lm.py                              # tiny random LM, CPU (no weights needed)
    python bench/lm.py --full-size --device cuda    # acestep-5Hz-lm-1.7B geometry, random bf16 weights

For each batch size (1, 8, 32) and with/without classifier-free guidance, every request
decodes ``--tokens`` audio codes under the real constraint (codes only, end-of-sequence
exactly at the target) through engine.acestep.lm.decode.decode, the loop the planner uses.
Speed does not depend on the weights, so the full-size run uses random ones.
Reported: tokens per second per request and in total (guided rows are not counted twice).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path and its queue.py would shadow the stdlib's.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from engine.acestep.lm.constraints import Constraint, Spec, Vocab  # noqa: E402
from engine.acestep.lm.decode import DecodeJob, decode  # noqa: E402
from engine.acestep.lm.tokenizer import build_tiny_tokenizer  # noqa: E402

FULL_1_7B = {
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 217_204,
}


def tiny_model(device: str) -> tuple[torch.nn.Module, Any, int]:
    """The tiny random LM written by make_tiny_lm, loaded the way the planner loads it."""
    from engine.acestep.lm.model import load_lm
    from engine.acestep.lm.tiny import make_tiny_lm

    folder = make_tiny_lm(Path(tempfile.mkdtemp(prefix="songbot-bench-lm-")))
    lm = load_lm(folder, device)
    return lm.model, lm.tokenizer, lm.vocab_size


def full_size_model(device: str) -> tuple[torch.nn.Module, Any, int]:
    """The 1.7B geometry with random bf16 weights (the tokenizer only supplies special ids)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from engine.acestep.lm.tiny import tiny_config

    tok = build_tiny_tokenizer()
    config = {**tiny_config(FULL_1_7B["vocab_size"], 0, 0), **FULL_1_7B}
    config.pop("architectures")
    config.pop("dtype")
    qconfig = Qwen3Config(**config)
    qconfig._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen3ForCausalLM(qconfig).to(torch.bfloat16)
    return model.eval(), tok, FULL_1_7B["vocab_size"]


def run_case(
    model, vocab: Vocab, device: str, batch: int, guided: bool, tokens: int, top_p: float | None = 0.9
) -> dict[str, Any]:
    """Decode ``batch`` requests of ``tokens`` codes each; return the timing."""
    prompt = [vocab.think_open, vocab.newline] * 32  # a 64-token prompt; its content does not matter
    uncond = [vocab.newline] * 48
    jobs = [
        DecodeJob(
            prompt,
            Constraint(vocab, Spec("codes", target_codes=tokens)),
            seed,
            uncond if guided else None,
            2.0 if guided else 1.0,
            0.85,
            top_p,
            max_new_tokens=tokens + 1,
        )
        for seed in range(batch)
    ]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    decode(model, jobs, vocab.pad, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert all(len(j.tokens) == tokens + 1 for j in jobs)
    return {
        "batch": batch,
        "guidance": guided,
        "tokens_per_request": tokens + 1,
        "seconds": round(seconds, 3),
        "tok_s_per_request": round((tokens + 1) / seconds, 1),
        "tok_s_total": round(batch * (tokens + 1) / seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true", help="1.7B geometry, random weights (use a GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, default=None, help="codes per request (default 100 tiny, 500 full)")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus mass (1 disables the cut)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok, vocab_size = full_size_model(args.device) if args.full_size else tiny_model(args.device)
    vocab = Vocab.build(tok, vocab_size)
    tokens = args.tokens or (500 if args.full_size else 100)
    run_case(model, vocab, args.device, 1, True, 8)  # warm-up (allocator, kernels)
    results = [
        run_case(model, vocab, args.device, int(b), guided, tokens, args.top_p)
        for b in args.batches.split(",")
        for guided in (False, True)
    ]
    report = {
        "bench": "lm_decode",
        "model": "acestep-5Hz-lm-1.7B geometry, random bf16" if args.full_size else "tiny random LM, fp32",
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # the CPU may be shared; read numbers with it
        "top_p": args.top_p,
        "temperature": 0.85,
        "cfg_scale": 2.0,
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
