"""The one way benchmarks report: a JSON object on stdout, and optionally in a file under bench/results/."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], out: Path | None = None) -> None:
    """Print `result` (with the machine named) as one JSON line, and write it to `out` if given."""
    result.setdefault(
        "machine", f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    text = json.dumps(result)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
