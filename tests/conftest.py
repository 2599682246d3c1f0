"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.helpers import postgres_schema, postgres_url, sqlite_db
from tests.loopback import refuse_non_loopback

_PG_URL = postgres_url()


def pytest_report_header() -> str:
    """Say which databases the integration tests run on."""
    if _PG_URL:
        return f"databases: SQLite and PostgreSQL ({_PG_URL.split('@')[-1]})"
    return "databases: SQLite only (no PostgreSQL answered at TEST_DATABASE_URL)"


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
