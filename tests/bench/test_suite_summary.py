"""`bench/suite_summary.py` folds the suite's JSON-lines files: a killed bench keeps what it measured."""

import json
from pathlib import Path

from bench.suite_summary import failed, main, summary


def write(folder: Path, name: str, *records: dict, cut: str = "") -> None:
    """``folder/name.jsonl`` with one line per record, and optionally a last line cut off mid-way."""
    lines = [json.dumps(r) for r in records]
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n" + cut)


def lm_case(phase: str, batch: int, guided: bool, per_request: float, total: float) -> dict:
    return {
        "record": "case",
        "phase": phase,
        "batch": batch,
        "guidance": guided,
        "tok_s_per_request": per_request,
        "tok_s_total": total,
    }


def test_a_killed_bench_keeps_its_figures_and_its_records(tmp_path):
    write(
        tmp_path,
        "lm",
        {"record": "setup", "device": "cpu"},
        {"record": "kernels", "kernels_per_step": 480},
        lm_case("codes", 1, True, 310.0, 310.0),
        lm_case("meta", 1, False, 160.0, 160.0),
        {"record": "exit", "rc": 124, "seconds": 60, "error": "timed out after 60 s", "stderr_tail": "..."},
        cut='{"record": "case", "phase": "co',
    )
    result = summary(tmp_path, "H100", "abc")
    assert result["lm"] == {
        "b1_cfg_tok_s": 310.0,
        "b32_cfg_tok_s_total": None,
        "meta_b1_tok_s": 160.0,
        "describe_b1_tok_s": None,
        "kernels_per_step": 480,
    }
    assert result["errors"]["lm"] == "timed out after 60 s"
    kinds = [r["record"] for r in result["partial"]["lm"]]
    assert kinds == ["setup", "kernels", "case", "case", "exit"]
    assert all("stderr_tail" not in r for r in result["partial"]["lm"])
    assert result["errors"]["engine"] == "not run" and result["engine"]["b1_180s_s"] is None


def test_every_bench_complete_fills_the_summary(tmp_path):
    ok = {"record": "exit", "rc": 0, "seconds": 5}
    write(
        tmp_path,
        "engine",
        {"record": "setup", "device": "NVIDIA H100"},
        {"record": "kernels", "kernels_per_step": 1200},
        {
            "record": "run",
            "batch": 1,
            "total_s": 0.5,
            "dit_total_s": 0.2,
            "vae_decode_s": 0.3,
            "timing_pass_s": 0.02,
            "timing_share_of_dit": 0.1,
        },
        {"record": "run", "batch": 8, "total_s": 2.5, "dit_total_s": 1.0, "vae_decode_s": 1.4},
        ok,
    )
    write(
        tmp_path,
        "exact",
        {"record": "setup", "batch": 8},
        {"record": "time", "mode": "exact", "dit_vae_s": 1.1},
        {"record": "time", "mode": "batched", "dit_vae_s": 1.0},
        {"record": "compare", "mode": "exact", "bit_identical": True, "snr_db": None},
        {"record": "compare", "mode": "batched", "bit_identical": False, "snr_db": 49.0},
        ok,
    )
    write(tmp_path, "lm", lm_case("codes", 32, True, 200.0, 6400.0), ok)
    write(tmp_path, "encode", {"record": "chosen", "x_realtime_per_core": 12.0}, ok)
    write(
        tmp_path,
        "service",
        {"record": "saturation", "songs_per_hour": 2100, "gpu_busy_share": 0.9},
        {"record": "half_load", "p50_s_half_load": 20.0, "p95_s_half_load": 28.0},
        ok,
    )
    write(
        tmp_path,
        "vae",
        {"record": "decode", "variant": "fast", "seconds": 1.5},
        {"record": "compare", "speedup": 2.0},
        ok,
    )
    write(
        tmp_path,
        "styles",
        {"record": "merge", "config": "full", "rank": 8, "switch_s": 0.2, "restore_s": 0.01, "restore_exact": True},
        {"record": "side_by_side", "config": "full", "rank": 8, "overhead_pct": 4.0},
        {"record": "merge", "config": "full", "rank": 64, "switch_s": 0.3, "restore_s": 0.01, "restore_exact": True},
        {"record": "side_by_side", "config": "full", "rank": 64, "overhead_pct": 9.0},
        ok,
    )
    write(
        tmp_path,
        "score",
        {"record": "setup", "device": "cuda"},
        {"record": "case", "seconds": 60, "take_s": 10.0, "score_s": 0.5, "score_pct": 5.0},
        {"record": "case", "seconds": 180, "take_s": 30.0, "score_s": 1.2, "score_pct": 4.0},
        ok,
    )
    result = summary(tmp_path, "cuda", "abc")
    assert result["device"] == "NVIDIA H100" and result["errors"] == {} and result["partial"] == {}
    assert result["score"] == {"seconds": 180, "take_s": 30.0, "score_s": 1.2, "score_pct": 4.0, "score_pct_max": 5.0}
    assert result["engine"]["b8_180s_s"] == 2.5 and result["engine"]["kernels_per_step"] == 1200
    assert result["engine"]["b1_timing_share_of_dit"] == 0.1 and result["engine"]["b8_timing_pass_s"] is None
    assert result["exact"]["cost_pct"] == 10.0 and result["exact"]["batched_snr_db"] == 49.0
    assert result["lm"]["b32_cfg_tok_s_total"] == 6400.0
    assert result["service"] == {
        "songs_per_hour": 2100,
        "p50_s_half_load": 20.0,
        "p95_s_half_load": 28.0,
        "gpu_busy_share": 0.9,
    }
    assert result["vae"] == {"b8_speedup": 2.0, "b8_fast_s": 1.5}
    assert result["styles"] == {
        "config": "full",
        "rank": 64,
        "switch_s": 0.3,
        "restore_s": 0.01,
        "restore_exact": True,
        "hooks_overhead_pct": 9.0,
    }
    assert "engine_compiled" not in result and result["seconds"]["vae"] == 5


def test_failed_lists_the_benches_with_errors(tmp_path):
    write(tmp_path, "vae", {"record": "decode", "variant": "fast", "seconds": 1.5}, {"record": "exit", "rc": 0})
    write(tmp_path, "lm", {"record": "exit", "error": "skipped: the suite budget was spent"})
    assert main([str(tmp_path), "H200", "abc"]) == 0
    assert failed(tmp_path / "gpu-suite.json") == ["encode", "engine", "exact", "lm", "service", "styles", "score"]
    assert failed(tmp_path / "missing.json") == ["encode", "engine", "exact", "lm", "service", "vae", "styles", "score"]
