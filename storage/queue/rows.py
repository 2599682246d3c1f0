"""Rows as values and values as rows: what crosses the storage boundary in and out of the tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row

from storage.contract.results import LyricTiming, ModelInfo, Record, StyleRef, TakeScore, TrackMeta
from storage.contract.spec import JobSpec, Plan
from storage.contract.types import QUEUED, DeliveryTarget, JobView, NewTrack, TrackView, UserView
from storage.queue.fairness import Tags


def job_view(row: Any) -> JobView:
    """A jobs row (or anything with its column names as attributes) as a value."""
    return JobView(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        status=row.status,
        stage=row.stage,
        progress=row.progress,
        seed=row.seed,
        spec=JobSpec.from_stored(row.spec),
        parent_id=row.parent_id,
        source_blob=row.source_blob,
        attempts=row.attempts,
        error=row.error,
        cost=row.cost,
        vstart=row.vstart,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        lease_owner=row.lease_owner,
        result=row.result,
    )


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
        timing=LyricTiming.from_column(row.timing),
        score=TakeScore.from_column(row.score),
        style=StyleRef.from_column(row.style),
    )


def queued_job_values(
    job: dict[str, Any], source_blob: str | None, cost: float, tags: Tags, now: datetime, max_attempts: int
) -> dict[str, Any]:
    """The column values of a new queued job: `job` (user, kind, spec, seed, parent) with its price and tags."""
    return {
        **job,
        "source_blob": source_blob,
        "status": QUEUED,
        "stage": QUEUED,
        "progress": 0.0,
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_after": now,
        "cost": cost,
        "vstart": tags.vstart,
        "vfinish": tags.vfinish,
        "created_at": now,
    }


def track_values(track: NewTrack) -> dict[str, Any]:
    """A new track as the column values of its tracks row (less `job_id` and `created_at`)."""
    return {
        "batch_index": track.batch_index,
        "blob_path": track.blob_path,
        "format": track.format,
        "duration_s": track.duration_s,
        "seed": track.seed,
        "sha256": track.sha256,
        "title": track.title,
        "caption": track.caption,
        "lyrics": track.lyrics,
        "meta": track.meta.stored(),
        "audio_codes": _codes_text(track.plan),
        "plan": track.plan.stored() if track.plan is not None else None,
        "model": track.model.stored(),
        "notice": track.notice,
        "latents_blob": track.latents_blob,
        "timing": _stored(track.timing),
        "score": _stored(track.score),
        "style": _stored(track.style),
    }


def _stored(value: Record | None) -> dict[str, Any] | None:
    return value.stored() if value is not None else None


def _codes_text(plan: Plan | None) -> str | None:
    codes = plan.audio_codes if plan is not None else ()
    return " ".join(str(code) for code in codes) if codes else None


def delivery_values(job_id: int, target: DeliveryTarget) -> dict[str, Any]:
    """Where a job's status and result go, as the column values of its new outbox row."""
    return {
        "job_id": job_id,
        "platform": target.platform,
        "chat_id": target.chat_id,
        "reply_to_message_id": target.reply_to_message_id,
        "status_message_id": target.status_message_id,
        "interaction_token": target.interaction_token,
        "token_expires_at": target.token_expires_at,
        "extra": dict(target.extra),
        "state": "pending",
        "attempts": 0,
    }


def user_view(row: Row[Any]) -> UserView:
    """A users row as a value."""
    return UserView(
        id=row.id,
        platform=row.platform,
        platform_id=row.platform_id,
        display_name=row.display_name,
        role=row.role,
        banned=row.banned,
        weight=row.weight,
        daily_quota=row.daily_quota,
    )
