"""`bench/gpu_suite.sh` in its small mode (tiny models on the CPU): every bench runs and is summarized,
a bench killed mid-run keeps what it measured, and the second command re-runs only what was lost."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.records import read_records
from tests.helpers import REPO

BENCHES = {"encode", "engine", "exact", "lm", "service", "vae", "styles", "score"}


def environment(tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHON": sys.executable,
        "SMALL": "1",
        "OMP_NUM_THREADS": "1",
        "SUITE_STATE": str(tmp_path / "state"),
        **env,
    }


def suite(tmp_path: Path, out: str = "out", **env: str) -> dict:
    """Run the small suite into ``tmp_path/out``; its summary."""
    subprocess.run(
        [str(REPO / "bench" / "gpu_suite.sh"), str(tmp_path / out)],
        check=True,
        timeout=1500,
        cwd=REPO,
        env=environment(tmp_path, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return json.loads((tmp_path / out / "gpu-suite.json").read_text())


def kernel_counters_present() -> bool:
    """engine/acestep/kernels.py (the dispatch counters) is in this checkout."""
    return importlib.util.find_spec("engine.acestep.kernels") is not None


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_small_suite_fills_every_key(tmp_path):
    summary = suite(tmp_path)
    assert summary["errors"] == {} and summary["partial"] == {}
    assert summary["device"] == "cpu" and summary["commit"]
    counted = kernel_counters_present()
    for section in ("engine", "lm", "encode", "service", "vae", "exact", "styles"):
        for key, value in summary[section].items():
            if key == "kernels_per_step" and not counted:
                assert value is None, "without engine/acestep/kernels.py the count must be null, not invented"
            else:
                assert value is not None, f"{section}.{key} is null in SMALL mode"
    assert summary["lm"]["meta_b1_tok_s"] > 0 and summary["lm"]["b1_cfg_tok_s"] > 0
    assert summary["exact"]["exact_bit_identical"] is True and summary["exact"]["batch"] == 2
    assert summary["styles"]["restore_exact"] is True
    assert set(summary["seconds"]) == BENCHES
    assert read_records(tmp_path / "out" / "service.jsonl")[0]["planner"] == "fast"
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == sorted([f"{name}.jsonl" for name in BENCHES] + ["gpu-suite.json"])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def bench_process(suite_pid: int, script: str) -> int | None:
    for pid in descendants(suite_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if script.encode() in argv and b"timeout" not in argv[0]:
            return pid
    return None


def wait_for(condition, what: str, seconds: float = 600.0):  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it returns something true (an event seen through the file system)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.2)
    raise AssertionError(f"never saw {what}")


@pytest.mark.timeout(900)
def test_a_bench_killed_mid_run_keeps_its_records_and_the_suite_goes_on(tmp_path):
    out = tmp_path / "out"
    lines = out / "lm.jsonl"
    process = subprocess.Popen(
        [str(REPO / "bench" / "gpu_suite.sh"), str(out)],
        cwd=REPO,
        env=environment(tmp_path, SUITE_SKIP="engine exact service vae styles score"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # The planner bench prints its first case (batch 1 with guidance) long before its batch of 32 ends.
        wait_for(lambda: any(r["record"] == "case" for r in read_records(lines)), "the first lm case")
        os.kill(wait_for(lambda: bench_process(process.pid, "bench/lm.py"), "the lm process"), signal.SIGKILL)
        assert process.wait(timeout=600) == 0
    finally:
        process.kill()
    summary = json.loads((out / "gpu-suite.json").read_text())
    assert summary["errors"]["lm"] == "exit status 137"
    assert summary["lm"]["b1_cfg_tok_s"] > 0  # measured before the kill, kept
    kinds = [r["record"] for r in summary["partial"]["lm"]]
    assert kinds[:3] == ["setup", "kernels", "case"] and kinds[-1] == "exit"
    assert summary["encode"]["x_realtime_per_core"] > 0  # the bench beside it ran on
    assert "encode" not in summary["errors"] and summary["errors"]["vae"] == "skipped: named in SUITE_SKIP"


def test_a_bench_out_of_time_is_recorded_with_its_stderr(tmp_path):
    summary = suite(tmp_path, SUITE_LIMIT_ENGINE="1", SUITE_SKIP="encode exact lm service vae styles score")
    assert "timed out" in summary["errors"]["engine"] and summary["engine"]["b1_180s_s"] is None
    exit_record = read_records(tmp_path / "out" / "engine.jsonl")[-1]
    assert exit_record["record"] == "exit" and "stderr_tail" in exit_record


def test_the_second_command_reruns_only_what_the_first_lost(tmp_path):
    first = suite(tmp_path, "first", SUITE_SKIP="engine exact lm service vae styles score")
    assert set(first["errors"]) == BENCHES - {"encode"}
    second = suite(tmp_path, "second", ONLY="failed", SUITE_BUDGET_S="0")
    # encode kept its first run (copied, not run again); every other bench was tried again.
    assert second["encode"] == first["encode"] and "encode" not in second["errors"]
    assert all("budget" in second["errors"][name] for name in BENCHES - {"encode"})
    assert (tmp_path / "second" / "encode.jsonl").read_text() == (tmp_path / "first" / "encode.jsonl").read_text()


def test_a_spent_budget_skips_the_rest(tmp_path):
    summary = suite(tmp_path, SUITE_BUDGET_S="0")
    assert set(summary["errors"]) == BENCHES
    assert all("budget" in error for error in summary["errors"].values())
