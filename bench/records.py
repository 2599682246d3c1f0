"""JSON lines for the GPU suite: each bench prints one record per case as soon as it is measured.

A record is one JSON object on one line of stdout, flushed at once, with ``record`` naming its kind
(``run``, ``case``, ``kernels``...). ``bench/gpu_suite.sh`` sends stdout to ``OUT/<bench>.jsonl``, so a
bench killed at its time limit keeps every record it printed; ``bench/suite_summary.py`` folds the lines.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any


def record(kind: str, out: Path | None = None, **fields: Any) -> dict[str, Any]:
    """Print ``{"record": kind, **fields}`` as one flushed line (and append it to ``out``); returns it."""
    line = {"record": kind, **fields}
    text = json.dumps(line)
    print(text, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as file:
            file.write(text + "\n")
    return line


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of ``path`` (other lines, and a line cut off by a kill, are skipped)."""
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def kernels_per_step(name: str, **kwargs: Any) -> int | None:
    """``engine.acestep.kernels.<name>(**kwargs)``: dispatches of one step on the meta device; None without it."""
    try:
        # Imported by name: the counters live in the engine and may be absent from an older checkout.
        kernels = importlib.import_module("engine.acestep.kernels")
        return int(getattr(kernels, name)(**kwargs))
    except Exception as error:  # noqa: BLE001 - a count is a figure; its absence must not cost the bench
        print(f"kernel count {name} unavailable: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return None


def exit_record(path: Path, rc: int, seconds: int, limit: int, stderr: Path) -> dict[str, Any]:
    """Append the suite's ``exit`` record for one bench to ``path``: its status, and why it failed if it did."""
    line: dict[str, Any] = {"record": "exit", "rc": rc, "seconds": seconds, "limit_s": limit}
    if rc != 0:
        # timeout(1) exits 124 at the limit, 137 when it had to kill; 137 before the limit is a kill from outside.
        timed_out = rc == 124 or (rc == 137 and seconds >= limit)
        line["error"] = f"timed out after {limit} s" if timed_out else f"exit status {rc}"
        line["stderr_tail"] = stderr.read_text(errors="replace")[-3000:] if stderr.is_file() else ""
    with path.open("a") as file:
        file.write(json.dumps(line) + "\n")
    return line


def skip_record(path: Path, reason: str) -> None:
    """Write ``path`` holding one ``exit`` record that says why the bench did not run."""
    path.write_text(json.dumps({"record": "exit", "error": f"skipped: {reason}"}) + "\n")


def main(argv: list[str]) -> int:
    """``python -m bench.records exit JSONL RC SECONDS LIMIT STDERR`` or ``skip JSONL REASON`` (for gpu_suite.sh)."""
    if argv[:1] == ["exit"] and len(argv) == 6:
        exit_record(Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]), Path(argv[5]))
    elif argv[:1] == ["skip"] and len(argv) == 3:
        skip_record(Path(argv[1]), argv[2])
    else:
        print(main.__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
