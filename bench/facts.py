"""Where the benchmarks read the official model configurations: the repository's copy of the facts kit."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "tests" / "data" / "conformance" / "acestep_facts" / "configs"
