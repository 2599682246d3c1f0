"""Database engines (the schema upgrade is `migrations.upgrade`, run by each process on start).

SQLite runs in WAL mode with a busy timeout, and every write transaction opens with
`BEGIN IMMEDIATE`: with pysqlite's default deferred `BEGIN`, two processes could both read
the same queued job and then both write it. Reads that must not take the write lock use
`read_only(engine)`. PostgreSQL goes through the same code (psycopg); row locks there come
from `FOR UPDATE SKIP LOCKED` in the queue's statements.

Every engine hides statement parameters from its errors (`hide_parameters`), so a traceback never
carries a user's description or lyrics into a log. On PostgreSQL, which refuses a NUL in text, the
strings of every statement lose their NULs before they are sent: user text is cleaned where it comes
in (`storage.contract.text`), and this is the guard behind that.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from storage.contract.text import without_nul
from storage.private import private_dir, private_file

BUSY_TIMEOUT_MS = 30_000


def utcnow() -> datetime:
    """The current time as a naive UTC datetime, the form every table stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url`, with SQLite made safe for several processes."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("hide_parameters", True)
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
        event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
        return engine
    _ensure_sqlite_dir(url)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def read_only(engine: Engine) -> Engine:
    """The same engine, but transactions open with a deferred `BEGIN` on SQLite."""
    return engine.execution_options(songbot_read_only=True)


def _ensure_sqlite_dir(url: str) -> None:
    """The database's folder and file, created owner-only (SQLite gives its WAL the file's mode)."""
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:" and not path.startswith("file:"):
        private_dir(Path(path).parent)
        private_file(Path(path))


def _without_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _executemany: bool
) -> tuple[str, Any]:
    return statement, without_nul(parameters)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would emit a deferred one).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    if conn.get_execution_options().get("songbot_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
