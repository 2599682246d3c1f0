"""Fixtures and reporting shared by every test module.

The suite runs in parallel (`make test`: pytest-xdist, one worker per CPU); nothing here is shared between
workers but the PostgreSQL server, where each test gets a schema of its own.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.helpers import postgres_schema, postgres_url, sqlite_db
from tests.loopback import refuse_non_loopback

_PG_URL = postgres_url()
# The `db` fixture's parameter in a test id: `test_claim[sqlite]`, `test_x[postgresql-3]`.
DB_PARAM = re.compile(r"\[(?:[^\]]*-)?(sqlite|postgresql)(?:-[^\]]*)?\]$")
# Modules whose tests take tens of seconds each on a 2-core machine (tiny checkpoints on torch, whole
# processes, real chat clients against loopback servers): `-m "not slow"` (`make test-quick`) leaves them out.
# Chosen from `pytest --durations=60` (2026-12-07, 2 busy cores): these modules held about 1,900 of the
# suite's 2,700 test-seconds.
SLOW_MODULES = frozenset(
    {
        "tests/bench/test_gpu_suite.py",
        "tests/bench/test_service_load.py",
        "tests/bot/console/test_console_describe.py",
        "tests/bot/console/test_console_e2e.py",
        "tests/bot/discord/test_discord_edits.py",
        "tests/bot/telegram/test_telegram_edits.py",
        "tests/bot/telegram/test_telegram_cover_lyrics.py",
        "tests/bot/telegram/test_telegram_load.py",
        "tests/bot/telegram/test_telegram_restart.py",
        "tests/engine/acestep/test_acestep_backend.py",
        "tests/engine/acestep/test_acestep_cover_lyrics.py",
        "tests/engine/acestep/test_acestep_console_e2e.py",
        "tests/engine/acestep/test_acestep_cover_lyrics_e2e.py",
        "tests/engine/acestep/test_acestep_edits_e2e.py",
        "tests/engine/acestep/test_acestep_exact.py",
        "tests/engine/acestep/test_describe.py",
        "tests/engine/acestep/test_describe_console_e2e.py",
        "tests/engine/lm/test_console_e2e.py",
        "tests/engine/lm/test_decode.py",
        "tests/engine/lm/test_fast.py",
        "tests/engine/lm/test_integration.py",
        "tests/engine/lm/test_planner.py",
        "tests/engine/test_worker_pipeline.py",
        "tests/songbot/test_ports.py",
        "tests/songbot/test_scale_out.py",
    }
)
# Modules whose tests run whole songbot processes under a subprocess time limit: one xdist worker takes them
# all, one after another (`--dist loadgroup`), so that two of them never share the CPUs and run past their limits.
PROCESS_MODULES = frozenset(
    {
        "tests/bench/test_gpu_suite.py",
        "tests/bench/test_service_load.py",
        "tests/bot/console/test_console_describe.py",
        "tests/bot/console/test_console_e2e.py",
        "tests/engine/acestep/test_acestep_console_e2e.py",
        "tests/engine/acestep/test_acestep_cover_lyrics_e2e.py",
        "tests/engine/acestep/test_acestep_edits_e2e.py",
        "tests/engine/acestep/test_describe_console_e2e.py",
        "tests/engine/lm/test_console_e2e.py",
        "tests/songbot/test_ports.py",
        "tests/songbot/test_scale_out.py",
    }
)
# What the queue tests ran on, counted on the process that prints the summary (the xdist controller).
_db_outcomes: Counter[tuple[str, str]] = Counter()


def pytest_report_header() -> str:
    """Say which databases the integration tests run on."""
    return databases_line()


def databases_line() -> str:
    """Which databases the queue tests run on (PostgreSQL named by its host, port and database)."""
    if _PG_URL:
        return f"databases: SQLite and PostgreSQL ({_PG_URL.split('@')[-1]})"
    return "databases: SQLite only (no PostgreSQL answered at TEST_DATABASE_URL)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of SLOW_MODULES `slow`, and put those of PROCESS_MODULES in one xdist group."""
    for item in items:
        module = item.nodeid.split("::")[0]
        if module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if module in PROCESS_MODULES:
            item.add_marker(pytest.mark.xdist_group("processes"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count each database test's outcome (xdist hands the workers' reports to the controller too)."""
    match = DB_PARAM.search(report.nodeid)
    if match and (report.when == "call" or report.skipped):
        _db_outcomes[(match[1], report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The databases line again at the end, where `-q` does not hide it, with what ran on each."""
    terminalreporter.write_line(summary_line(_db_outcomes, _PG_URL.split("@")[-1] if _PG_URL else None))


def summary_line(outcomes: Counter[tuple[str, str]], server: str | None) -> str:
    """`databases: queue tests ran on SQLite (40) and PostgreSQL at host:5432/test (40)`, or SQLite alone.

    Args:
        outcomes: Test runs counted by (database, outcome).
        server: Where the PostgreSQL tests ran (host, port and database), or None when none answered.
    """
    ran = {name: outcomes[(name, "passed")] + outcomes[(name, "failed")] for name in ("sqlite", "postgresql")}
    skipped = outcomes[("postgresql", "skipped")]
    if not ran["sqlite"] and not ran["postgresql"] and not skipped:
        return "databases: no queue test ran in this selection"
    if server is None or not ran["postgresql"]:
        line = f"databases: queue tests ran on SQLite alone ({ran['sqlite']})"
        return line + (f"; {skipped} PostgreSQL runs skipped: no server answered at TEST_DATABASE_URL" * bool(skipped))
    return f"databases: queue tests ran on SQLite ({ran['sqlite']}) and PostgreSQL at {server} ({ran['postgresql']})"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test: any host but loopback raises `ExternalNetworkRefused` (see tests/loopback.py)."""
    refuse_non_loopback(monkeypatch)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated database: SQLite always, PostgreSQL when one answers."""
    if request.param == "sqlite":
        with sqlite_db(tmp_path) as engine:
            yield engine
        return
    if _PG_URL is None:
        pytest.skip("no PostgreSQL server: these queue tests ran on SQLite alone")
    with postgres_schema(_PG_URL) as engine:
        yield engine
