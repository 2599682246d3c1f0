"""`bench/gpu_suite.sh` in its small mode (tiny models on the CPU): every bench runs and is summarized."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

REQUIRED = [
    ("engine", "b1_180s_s"),
    ("engine", "b8_180s_s"),
    ("lm", "b1_cfg_tok_s"),
    ("lm", "b32_cfg_tok_s_total"),
    ("lm", "meta_b1_tok_s"),
    ("encode", "x_realtime_per_core"),
    ("service", "songs_per_hour"),
    ("service", "p95_s_half_load"),
    ("exact", "cost_pct"),
    ("exact", "batched_snr_db"),
]


def suite(out: Path, **env: str) -> dict:
    subprocess.run(
        [str(REPO / "bench" / "gpu_suite.sh"), str(out)],
        check=True,
        timeout=280,
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable, "SMALL": "1", "OMP_NUM_THREADS": "1", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return json.loads((out / "gpu-suite.json").read_text())


@pytest.mark.slow
def test_small_suite_runs_every_bench_and_writes_the_summary(tmp_path):
    summary = suite(tmp_path)
    assert summary["errors"] == {}
    assert summary["device"] == "cpu" and summary["commit"]
    for section, key in REQUIRED:
        assert key in summary[section]
    assert summary["engine"]["b1_180s_s"] > 0 and summary["encode"]["x_realtime_per_core"] > 0
    assert summary["service"]["p95_s_half_load"] > 0 and summary["service"]["songs_per_hour"] > 0
    assert summary["lm"]["b1_cfg_tok_s"] > 0
    assert summary["exact"]["exact_bit_identical"] is True and summary["exact"]["batch"] == 2
    files = sorted(p.name for p in tmp_path.iterdir())
    expected = ["encode.json", "engine.json", "exact.json", "gpu-suite.json", "lm.json", "service.json", "vae.json"]
    assert files == expected


def test_a_bench_out_of_time_is_recorded_and_the_suite_goes_on(tmp_path):
    summary = suite(tmp_path, SUITE_LIMIT_ENGINE="1", SUITE_SKIP="encode exact lm service")
    assert "timed out" in summary["errors"]["engine"] and summary["engine"]["b1_180s_s"] is None
    assert "stderr_tail" in json.loads((tmp_path / "engine.json").read_text())
    assert summary["errors"]["lm"] == "skipped: named in SUITE_SKIP"
    assert summary["vae"]["b8_speedup"] > 0  # the bench after the failed one still ran


def test_a_spent_budget_skips_the_rest(tmp_path):
    summary = suite(tmp_path, SUITE_BUDGET_S="0")
    assert set(summary["errors"]) == {"encode", "engine", "exact", "lm", "service", "vae"}
    assert all("budget" in error for error in summary["errors"].values())
