"""Where the tests' data lives: plain paths, importable without the project's database stack.

The planner's GPU check (bench/lm_gpu_suite.sh) runs tests/engine/lm on a machine without SQLAlchemy,
so its conftest takes these from here rather than from tests/helpers.py.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The data the tests read lives in the repository (copies of the official conformance kits and LM log).
TEST_DATA = REPO / "tests" / "data"
FACTS = TEST_DATA / "conformance" / "acestep_facts"
DIT_KIT = Path(os.environ.get("ACESTEP_CONFORMANCE_DIR", TEST_DATA / "conformance" / "acestep_dit"))
