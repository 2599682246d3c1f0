"""Where the benchmarks read the official model configurations (inside the repository first)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_IN_REPO = REPO / "tests" / "data" / "conformance" / "acestep_facts" / "configs"
_SHARED = REPO.parent / "shared" / "conformance" / "acestep_facts" / "configs"


def configs_dir() -> Path:
    """``tests/data/conformance/acestep_facts/configs``; ``../shared/...`` only when the repository lacks it."""
    return _IN_REPO if _IN_REPO.is_dir() or not _SHARED.is_dir() else _SHARED
