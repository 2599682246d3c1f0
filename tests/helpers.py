"""Shared test helpers: settings in a temp dir, databases, and an in-process engine."""

from __future__ import annotations

import datetime as dt
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine.protocol import TrackRequest
from migrations import upgrade
from storage.contract.spec import JobSpec
from storage.db import make_engine
from storage.settings import Settings

# Re-exported: many tests import these paths from here.
from tests.paths import DIT_KIT as DIT_KIT
from tests.paths import FACTS as FACTS
from tests.paths import REPO as REPO
from tests.paths import TEST_DATA as TEST_DATA

DEFAULT_PG = "postgresql+psycopg://root@127.0.0.1:5432/test"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings isolated in `tmp_path`: SQLite there, sketch backend, fast polling, no `.env`."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "model_dir": tmp_path / "no-models",
        "engine_backend": "sketch",
        "engine_poll_s": 0.05,
        "delivery_poll_s": 0.05,
        "status_edit_interval_s": 0.0,
        "engine_lease_s": 5.0,
        "engine_encode_processes": 0,  # encodes in threads; tests/engine/test_worker_pipeline.py spawns
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def start_engine(settings: Settings, wrap: Callable[[Any], Any] | None = None) -> Callable[[], None]:
    """Run the real engine worker (backend from settings) in a thread; returns a stop function.

    Args:
        settings: The settings the engine process would read.
        wrap: Optionally wraps the loaded generator (to pace or hold it in a test).
    """
    from engine.main import build_worker

    worker = build_worker(settings)
    if wrap is not None:
        worker.generator = wrap(worker.generator)
    thread = threading.Thread(target=worker.run, name="test-engine", daemon=True)
    thread.start()

    def stop() -> None:
        worker.stop()
        thread.join(timeout=30)

    return stop


def postgres_url() -> str | None:
    """TEST_DATABASE_URL (or the local default) when a PostgreSQL server answers, else None."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
    if not url:
        return None
    try:
        engine = make_engine(url, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return url
    except Exception:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        return None


@contextmanager
def postgres_schema(url: str) -> Iterator[Engine]:
    """A fresh schema of its own on the PostgreSQL server, migrated to head, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    # The search path rides in the URL, so a second engine made from `engine.url` sees the same schema.
    separator = "&" if "?" in url else "?"
    engine = make_engine(f"{url}{separator}options=-csearch_path%3D{schema}", pool_size=8)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@contextmanager
def sqlite_db(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite file migrated to head."""
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def track_request(
    job_id: int,
    kind: str = "song",
    caption: str = "",
    lyrics: str = "",
    instrumental: bool = False,
    duration_s: float = 10.0,
    seed: int = 0,
    *,
    source_audio: Any = None,
    base_audio: Any = None,
    base_latents: Any = None,
    reference_audio: Any = None,
    **spec: Any,
) -> TrackRequest:
    """A backend's request for a job with this spec (the fields of `JobSpec`), as the worker builds it."""
    fields = {"caption": caption, "lyrics": lyrics, "instrumental": instrumental, "duration_s": duration_s}
    return TrackRequest(
        job_id=job_id,
        kind=kind,
        spec=JobSpec(**fields, **spec),
        seed=seed,
        source_audio=source_audio,
        base_audio=base_audio,
        base_latents=base_latents,
        reference_audio=reference_audio,
    )


class Killed(BaseException):
    """A process dying mid-step: a BaseException, so nothing in the code under test catches it."""


class ManualClock:
    """A clock that stands still until a test moves `now`."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def make_old_song(engine: Engine, blobs: Any, song_id: int, latents: bool = True) -> None:
    """Make a stored song look like one made before timed lyrics: no timing; latents kept or not.

    The sketch keeps no latents, so `latents=True` stores a small stand-in array for the song, the way
    the acestep backend keeps its own.
    """
    import numpy as np
    from sqlalchemy import update

    from storage.models import tracks_table

    kept = blobs.put_array(f"latents/{song_id}.npy", np.zeros((25, 64), np.float32)) if latents else None
    with engine.begin() as conn:
        conn.execute(
            update(tracks_table).where(tracks_table.c.job_id == song_id).values(timing=None, latents_blob=kept)
        )
