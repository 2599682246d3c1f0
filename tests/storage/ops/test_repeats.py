"""Quiet outages: the same failure on every poll is logged once, then at back-off with a count."""

from __future__ import annotations

import logging
import socket

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from storage.db import make_engine
from storage.ops.repeats import RepeatedErrors

log = logging.getLogger("songbot.test-repeats")


def closed_port() -> int:
    """A loopback port that nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_down_error() -> OperationalError:
    """The error a poll gets from a PostgreSQL URL on a closed loopback port."""
    db = make_engine(f"postgresql+psycopg://songbot@127.0.0.1:{closed_port()}/test")
    try:
        with db.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as error:
        return error
    finally:
        db.dispose()
    raise AssertionError("a closed port answered")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == log.name]


def test_a_poll_failing_for_40_seconds_logs_a_handful_of_lines_not_one_per_poll(caplog):
    caplog.set_level(logging.INFO, logger=log.name)
    error, clock = database_down_error(), Clock()
    errors = RepeatedErrors(log, "claiming", clock=clock)
    for _ in range(365):  # the count: 365 polls in 40 s
        errors.failed(error)
        clock.now += 40 / 365
    lines = records(caplog)
    assert lines[0].levelno == logging.ERROR and lines[0].exc_info is not None  # the first one in full
    repeats = lines[1:]
    assert all(line.exc_info is None and line.getMessage() == "claiming still failing" for line in repeats)
    # At back-off: after 1, 2, 4, 8, 16 s (then 32 s is past the 40 s); each says how many so far.
    assert len(repeats) == 5
    assert [line.failures for line in repeats] == sorted(line.failures for line in repeats)  # type: ignore[attr-defined]
    assert errors.count == 365


def test_recovery_is_said_once_and_a_new_failure_is_logged_in_full_again(caplog):
    caplog.set_level(logging.INFO, logger=log.name)
    error, clock = database_down_error(), Clock()
    errors = RepeatedErrors(log, "delivery pass", clock=clock)
    errors.failed(error)
    errors.failed(error)
    clock.now += 12.5
    errors.recovered()
    errors.recovered()  # nothing failed since: nothing to say
    errors.failed(error)
    lines = records(caplog)
    assert [line.getMessage() for line in lines] == [
        "delivery pass failed",
        "delivery pass works again",
        "delivery pass failed",
    ]
    assert (lines[1].failures, lines[1].for_s) == (2, 12.5)  # type: ignore[attr-defined]


def test_a_different_failure_is_logged_in_full_at_once(caplog):
    caplog.set_level(logging.INFO, logger=log.name)
    errors = RepeatedErrors(log, "claiming", clock=Clock())
    errors.failed(database_down_error())
    errors.failed(OSError(28, "No space left on device"))
    assert [line.levelno for line in records(caplog)] == [logging.ERROR, logging.ERROR]
