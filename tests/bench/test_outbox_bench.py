"""`bench/outbox.py` runs against today's queue API and reports a fair delivery order (counts, not timings)."""

import importlib.util
from pathlib import Path

from tests.helpers import REPO


def load_bench():
    spec = importlib.util.spec_from_file_location("outbox_bench", REPO / "bench" / "outbox.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_small_run_reports_the_delivery_order(tmp_path: Path):
    bench = load_bench()
    result = bench.measure(bench.fresh_queue(None, tmp_path, "outbox"), 120)
    assert result["open_deliveries"] == 120
    assert result["passes_until_finished_claimed"] == 1
    assert result["passes_to_see_every_open_row"] is not None
