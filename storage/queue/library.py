"""Finished tracks: lookups for re-rolls, history and lyrics (rows become values in `rows.py`)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from storage.contract.types import TrackView
from storage.db import read_only
from storage.models import jobs_table, tracks_table
from storage.queue.rows import track_view

tracks = tracks_table
jobs = jobs_table


class Library:
    """Reads of the tracks table."""

    def __init__(self, engine: Engine) -> None:
        self.reader = read_only(engine)

    def get(self, song_id: int) -> TrackView | None:
        """The track of song `song_id` (its job id), or None."""
        with self.reader.begin() as conn:
            row = conn.execute(
                select(tracks, jobs.c.kind, jobs.c.parent_id, jobs.c.spec, jobs.c.user_id)
                .join(jobs, jobs.c.id == tracks.c.job_id)
                .where(tracks.c.job_id == song_id)
            ).one_or_none()
            return track_view(row) if row is not None else None

    def history(self, user_id: int, limit: int = 10) -> list[TrackView]:
        """A user's latest finished songs, newest first."""
        with self.reader.begin() as conn:
            rows = conn.execute(
                select(tracks, jobs.c.kind, jobs.c.parent_id, jobs.c.spec, jobs.c.user_id)
                .join(jobs, jobs.c.id == tracks.c.job_id)
                .where(jobs.c.user_id == user_id)
                .order_by(tracks.c.job_id.desc())
                .limit(limit)
            ).all()
            return [track_view(row) for row in rows]
