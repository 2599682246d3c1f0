"""Finished tracks: lookups for re-rolls, history and lyrics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Row, select

from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import JobSpec, Plan
from storage.contract.types import TrackView
from storage.db import read_only
from storage.models import jobs_table, tracks_table

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


def track_view(row: Row[Any]) -> TrackView:
    """A tracks row (joined with its job's kind and spec) as a value, its JSON read by the one serialiser."""
    spec = JobSpec.from_stored(row.spec)
    return TrackView(
        job_id=row.job_id,
        blob_path=row.blob_path,
        format=row.format,
        duration_s=row.duration_s,
        seed=row.seed,
        sha256=row.sha256,
        title=row.title,
        caption=row.caption,
        lyrics=row.lyrics,
        meta=TrackMeta.from_stored(row.meta),
        plan=Plan.from_stored(row.plan) if row.plan else None,
        model=ModelInfo.from_stored(row.model),
        notice=row.notice,
        created_at=row.created_at,
        kind=row.kind,
        parent_id=row.parent_id,
        user_id=row.user_id,
        latents_blob=row.latents_blob,
        edit=spec.edit,
        like=spec.like,
    )
