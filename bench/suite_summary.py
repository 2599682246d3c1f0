"""Fold the JSON-lines files of one gpu_suite.sh run into OUT/gpu-suite.json (missing figures stay null).

    python bench/suite_summary.py OUT DEVICE COMMIT     # write OUT/gpu-suite.json, print it
    python bench/suite_summary.py --failed SUMMARY      # print the benches SUMMARY lists as failed

Each bench printed its records to OUT/<name>.jsonl, one JSON object a line as it measured them
(bench/records.py), and the suite appended an ``exit`` record (exit status, seconds, and for a failure
``error`` and ``stderr_tail``). A bench killed at its limit keeps the records it printed: the figures
they hold are reported, and ``partial`` keeps that bench's records whole. Keys are read defensively.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path: keep only the repository root there.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.records import read_records  # noqa: E402

BENCHES = ("encode", "engine", "exact", "lm", "service", "vae", "styles", "score")
OPTIONAL = ("engine_compiled",)
Records = list[dict[str, Any]]


def find(records: Records, kind: str, **match: Any) -> dict[str, Any]:
    """The last record of ``kind`` whose fields equal ``match`` ({} when there is none)."""
    for rec in reversed(records):
        if rec.get("record") == kind and all(rec.get(k) == v for k, v in match.items()):
            return rec
    return {}


def error_of(records: Records) -> str | None:
    """Why a bench has no complete result: the suite's ``exit`` record's error, or that it never ran."""
    if not records:
        return "not run"
    exit_record = find(records, "exit")
    if not exit_record:
        return "no exit record: the suite itself was stopped during this bench"
    return exit_record.get("error")


def engine_numbers(records: Records) -> dict[str, Any]:
    b1, b8 = find(records, "run", batch=1), find(records, "run", batch=8)
    return {
        "b1_180s_s": b1.get("total_s"),
        "b8_180s_s": b8.get("total_s"),
        "b1_dit_s": b1.get("dit_total_s"),
        "b1_vae_s": b1.get("vae_decode_s"),
        "b8_dit_s": b8.get("dit_total_s"),
        "b8_vae_s": b8.get("vae_decode_s"),
        "b1_timing_pass_s": b1.get("timing_pass_s"),
        "b1_timing_share_of_dit": b1.get("timing_share_of_dit"),
        "b8_timing_pass_s": b8.get("timing_pass_s"),
        "b8_timing_share_of_dit": b8.get("timing_share_of_dit"),
        "kernels_per_step": find(records, "kernels").get("kernels_per_step"),
    }


def exact_numbers(records: Records) -> dict[str, Any]:
    """Exact batches vs one call per batch (bench/exact.py): DiT + VAE times, the cost, alone vs in a batch."""
    exact, batched = find(records, "time", mode="exact"), find(records, "time", mode="batched")
    cost = None
    if exact.get("dit_vae_s") and batched.get("dit_vae_s"):
        cost = round(100.0 * (exact["dit_vae_s"] / batched["dit_vae_s"] - 1.0), 1)
    batched_compare = find(records, "compare", mode="batched")
    return {
        "batch": find(records, "setup").get("batch"),
        "exact_dit_vae_s": exact.get("dit_vae_s"),
        "batched_dit_vae_s": batched.get("dit_vae_s"),
        "cost_pct": cost,
        "exact_bit_identical": find(records, "compare", mode="exact").get("bit_identical"),
        "batched_bit_identical": batched_compare.get("bit_identical"),
        "batched_snr_db": batched_compare.get("snr_db"),
    }


def lm_numbers(records: Records) -> dict[str, Any]:
    """The planner's figures, from its ``case`` records (so a bench stopped early keeps those it ran)."""

    def case(phase: str, batch: int, guided: bool, field: str) -> Any:
        return find(records, "case", phase=phase, batch=batch, guidance=guided).get(field)

    return {
        "b1_cfg_tok_s": case("codes", 1, True, "tok_s_per_request"),
        "b32_cfg_tok_s_total": case("codes", 32, True, "tok_s_total"),
        "meta_b1_tok_s": case("meta", 1, False, "tok_s_per_request"),
        "describe_b1_tok_s": case("describe", 1, False, "tok_s_per_request"),
        "kernels_per_step": find(records, "kernels").get("kernels_per_step"),
    }


def service_numbers(records: Records) -> dict[str, Any]:
    saturation, half = find(records, "saturation"), find(records, "half_load")
    return {
        "songs_per_hour": saturation.get("songs_per_hour"),
        "p50_s_half_load": half.get("p50_s_half_load"),
        "p95_s_half_load": half.get("p95_s_half_load"),
        "gpu_busy_share": saturation.get("gpu_busy_share"),
    }


def styles_numbers(records: Records) -> dict[str, Any]:
    """A LoRA style's switch (restore + merge) on the largest config and rank measured, and the hooks' cost."""
    merges = [r for r in records if r.get("record") == "merge"]
    hooks = [r for r in records if r.get("record") == "side_by_side"]
    merge, hook = (merges[-1] if merges else {}), (hooks[-1] if hooks else {})
    return {
        "config": merge.get("config"),
        "rank": merge.get("rank"),
        "switch_s": merge.get("switch_s"),
        "restore_s": merge.get("restore_s"),
        "restore_exact": merge.get("restore_exact"),
        "hooks_overhead_pct": hook.get("overhead_pct"),
    }


def score_numbers(records: Records) -> dict[str, Any]:
    """best=N (bench/score.py): scoring a take against making it, for the longest song measured."""
    cases = [rec for rec in records if rec.get("record") == "case"]
    longest = max(cases, key=lambda rec: rec.get("seconds", 0)) if cases else {}
    return {
        "seconds": longest.get("seconds"),
        "take_s": longest.get("take_s"),
        "score_s": longest.get("score_s"),
        "score_pct": longest.get("score_pct"),
        "score_pct_max": max((rec["score_pct"] for rec in cases if "score_pct" in rec), default=None),
    }


def summary(folder: Path, device: str, commit: str) -> dict[str, Any]:
    """gpu-suite.json's content from the JSON-lines files in ``folder``."""
    data = {name: read_records(folder / f"{name}.jsonl") for name in BENCHES}
    data.update({name: read_records(folder / f"{name}.jsonl") for name in OPTIONAL})
    errors = {name: error for name, records in data.items() if (error := error_of(records))}
    for name in OPTIONAL:
        if not data[name]:
            errors.pop(name, None)  # an optional bench that was not asked for is no failure
    result: dict[str, Any] = {
        "device": find(data["engine"], "setup").get("device") or device,
        "commit": commit,
        "engine": engine_numbers(data["engine"]),
        "lm": lm_numbers(data["lm"]),
        "encode": {"x_realtime_per_core": find(data["encode"], "chosen").get("x_realtime_per_core")},
        "service": service_numbers(data["service"]),
        "vae": {
            "b8_speedup": find(data["vae"], "compare").get("speedup"),
            "b8_fast_s": find(data["vae"], "decode", variant="fast").get("seconds"),
        },
        "exact": exact_numbers(data["exact"]),
        "styles": styles_numbers(data["styles"]),
        "score": score_numbers(data["score"]),
        "seconds": {name: find(records, "exit").get("seconds") for name, records in data.items() if records},
        "errors": errors,
        "partial": {name: _without_logs(data[name]) for name in errors if data[name]},
    }
    if data["engine_compiled"]:
        result["engine_compiled"] = engine_numbers(data["engine_compiled"])
    return result


def _without_logs(records: Records) -> Records:
    """A failed bench's records, minus the stderr tail (it stays in that bench's .jsonl)."""
    return [{k: v for k, v in rec.items() if k != "stderr_tail"} for rec in records]


def failed(path: Path) -> list[str]:
    """The benches a previous summary lists under ``errors`` (all of them when it cannot be read)."""
    try:
        errors = json.loads(path.read_text()).get("errors") or {}
    except (OSError, ValueError, AttributeError):
        return [*BENCHES]
    return [name for name in [*BENCHES, *OPTIONAL] if name in errors]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failed", type=Path, help="print the benches this summary lists as failed")
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("device", nargs="?", default="unknown")
    parser.add_argument("commit", nargs="?", default="unknown")
    args = parser.parse_args(argv)
    if args.failed:
        print(" ".join(failed(args.failed)))
        return 0
    if args.folder is None:
        parser.error("give OUT DEVICE COMMIT, or --failed SUMMARY")
    result = summary(args.folder, args.device, args.commit)
    (args.folder / "gpu-suite.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
