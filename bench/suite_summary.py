"""Fold the JSON files of one gpu_suite.sh run into OUT/gpu-suite.json (missing numbers stay null).

    python bench/suite_summary.py OUT DEVICE COMMIT

Each bench wrote OUT/<name>.json: its own JSON object, or {"error": ..., "stderr_tail": ...} when it
failed or ran out of time. Keys are read defensively: a bench that changed its output leaves a null.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BENCHES = ("encode", "engine", "exact", "lm", "service", "vae")
OPTIONAL = ("engine_compiled",)


def read(folder: Path, name: str) -> dict[str, Any]:
    path = folder / f"{name}.json"
    if not path.is_file():
        return {"error": "not run"}
    text = path.read_text().strip()
    try:
        # A bench may print log lines before its JSON: the last line that parses wins.
        for line in reversed([text, *text.splitlines()]):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    except Exception as error:  # noqa: BLE001 - a summary never fails on one broken file
        return {"error": f"unreadable: {error}"}
    return {"error": "no JSON object in the output"}


def engine_run(engine: dict[str, Any], batch: int) -> dict[str, Any]:
    """The engine bench's run at ``batch`` ({} when it has none)."""
    for run in engine.get("runs") or [engine]:
        if isinstance(run, dict) and run.get("batch") == batch:
            return run
    return {}


def engine_numbers(engine: dict[str, Any]) -> dict[str, Any]:
    b1, b8 = engine_run(engine, 1), engine_run(engine, 8)
    return {
        "b1_180s_s": b1.get("total_s"),
        "b8_180s_s": b8.get("total_s"),
        "b1_dit_s": b1.get("dit_total_s"),
        "b1_vae_s": b1.get("vae_decode_s"),
        "b8_dit_s": b8.get("dit_total_s"),
        "b8_vae_s": b8.get("vae_decode_s"),
    }


def exact_numbers(exact: dict[str, Any]) -> dict[str, Any]:
    """Exact batches vs one call per batch (bench/exact.py): DiT + VAE times, the cost, alone vs in a batch."""
    return {
        "batch": exact.get("batch"),
        "exact_dit_vae_s": exact.get("exact_dit_vae_s"),
        "batched_dit_vae_s": exact.get("batched_dit_vae_s"),
        "cost_pct": exact.get("exact_cost_pct"),
        "exact_bit_identical": exact.get("exact_bit_identical"),
        "batched_snr_db": exact.get("batched_snr_db"),
    }


def lm_value(lm: dict[str, Any], key: str, batch: int, guided: bool, field: str) -> Any:
    """A top-level key (the rewritten bench) or the matching row of ``results`` (the older one)."""
    if lm.get(key) is not None:
        return lm[key]
    for row in lm.get("results") or []:
        if isinstance(row, dict) and row.get("batch") == batch and row.get("guidance") == guided:
            return row.get(field)
    return None


def summary(folder: Path, device: str, commit: str) -> dict[str, Any]:
    data = {name: read(folder, name) for name in BENCHES}
    data.update({name: read(folder, name) for name in OPTIONAL if (folder / f"{name}.json").is_file()})
    engine, lm, service, encode = data["engine"], data["lm"], data["service"], data["encode"]
    return {
        "device": engine.get("device") or device,
        "commit": commit,
        "engine": engine_numbers(engine),
        "lm": {
            "b1_cfg_tok_s": lm_value(lm, "b1_cfg_tok_s", 1, True, "tok_s_per_request"),
            "b32_cfg_tok_s_total": lm_value(lm, "b32_cfg_tok_s_total", 32, True, "tok_s_total"),
            "meta_b1_tok_s": lm.get("meta_b1_tok_s"),
        },
        "encode": {"x_realtime_per_core": encode.get("x_realtime_per_core")},
        "service": {
            "songs_per_hour": service.get("songs_per_hour"),
            "p50_s_half_load": service.get("p50_s_half_load"),
            "p95_s_half_load": service.get("p95_s_half_load"),
            "gpu_busy_share": service.get("gpu_busy_share"),
        },
        "engine_compiled": engine_numbers(data["engine_compiled"]) if "engine_compiled" in data else None,
        "vae": {"b8_speedup": data["vae"].get("speedup"), "b8_fast_s": data["vae"].get("fast_s")},
        "exact": exact_numbers(data["exact"]),
        "errors": {name: value["error"] for name, value in data.items() if "error" in value},
    }


def main() -> int:
    folder, device, commit = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    result = summary(folder, device, commit)
    (folder / "gpu-suite.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
