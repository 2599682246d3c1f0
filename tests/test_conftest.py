"""The test suite's own reporting (tests/conftest.py): which databases the queue tests ran on."""

from collections import Counter

import pytest

from tests.conftest import DB_PARAM, summary_line


@pytest.mark.parametrize(
    ("nodeid", "database"),
    [
        ("tests/storage/queue/test_jobs.py::test_claim[sqlite]", "sqlite"),
        ("tests/storage/queue/test_jobs.py::test_claim[postgresql]", "postgresql"),
        ("tests/storage/queue/test_jobs.py::test_x[postgresql-3]", "postgresql"),
        ("tests/storage/queue/test_jobs.py::test_x[2-sqlite]", "sqlite"),
        ("tests/storage/queue/test_jobs.py::test_x[mysqlite]", None),
        ("tests/storage/queue/test_jobs.py::test_y", None),
    ],
)
def test_the_database_of_a_test_is_read_from_its_id(nodeid, database):
    match = DB_PARAM.search(nodeid)
    assert (match[1] if match else None) == database


def test_the_summary_says_what_ran_where():
    both = Counter({("sqlite", "passed"): 40, ("postgresql", "passed"): 39, ("postgresql", "failed"): 1})
    assert summary_line(both, "127.0.0.1:5432/test") == (
        "databases: queue tests ran on SQLite (40) and PostgreSQL at 127.0.0.1:5432/test (40)"
    )
    assert summary_line(Counter(), "127.0.0.1:5432/test") == "databases: no queue test ran in this selection"
    alone = Counter({("sqlite", "passed"): 40, ("postgresql", "skipped"): 40})
    assert summary_line(alone, None) == (
        "databases: queue tests ran on SQLite alone (40); 40 PostgreSQL runs skipped: "
        "no server answered at TEST_DATABASE_URL"
    )
