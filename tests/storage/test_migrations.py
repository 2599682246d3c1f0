"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from migrations import upgrade
from storage.db import make_engine
from storage.models import Base, QueueState


def test_upgrade_head_matches_the_models(db):
    with db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_upgrade_creates_the_fairness_clock_row(db):
    with db.connect() as conn:
        rows = conn.execute(select(QueueState.__table__)).all()
    assert [(row.id, row.vtime, row.paused) for row in rows] == [(1, 0.0, False)]


def test_upgrade_is_idempotent_and_creates_the_file(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'songbot.db'}")
    upgrade(engine)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"users", "jobs", "tracks", "deliveries", "queue_state", "alembic_version"} <= tables
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
