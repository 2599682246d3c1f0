"""The fairness simulations of `bench/queue_bench.py` meet their targets (they are deterministic, not timings)."""

import importlib.util
from pathlib import Path

from tests.helpers import REPO


def load_bench():
    spec = importlib.util.spec_from_file_location("queue_bench", REPO / "bench" / "queue_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fairness_targets(tmp_path: Path):
    bench = load_bench()
    assert bench.fairness(bench.fresh_queue(None, tmp_path, "fair")) >= 0.95
    assert bench.light_user_wait(bench.fresh_queue(None, tmp_path, "light")) <= 2.0


def test_claim_latency_reports_percentiles(tmp_path: Path):
    bench = load_bench()
    result = bench.claim_latency(bench.fresh_queue(None, tmp_path, "claims"), users=20, jobs=400, claims=100)
    assert set(result) == {"claim_p50_ms", "claim_p99_ms"}
    assert 0 < result["claim_p50_ms"] <= result["claim_p99_ms"]
    queue = bench.fresh_queue(None, tmp_path, "claims")
    assert queue.counts() == {"running": 100, "queued": 300}
