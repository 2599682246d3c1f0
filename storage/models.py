"""The tables: users, jobs, tracks, deliveries (the outbox), the fairness clock and the engines that are up.

Alembic's migrations in `migrations/` create exactly this schema; a test compares the two.
Times are naive UTC datetimes passed in from Python (SQLite has no time zones), never
`CURRENT_TIMESTAMP`, so that tests control the clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base holding the one metadata object."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime()}


class User(Base):
    """A person on one platform. Weight scales their share of the GPU."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "platform_id", name="uq_users_platform_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(16), default="user")
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    daily_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Start-time fair queueing: the finish tag of this user's last submitted job.
    last_vfinish: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime]


class QueueState(Base):
    """One row (id 1): the fairness clock and the admin pause switch."""

    __tablename__ = "queue_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vtime: Mapped[float] = mapped_column(Float, default=0.0)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(Base):
    """A request to make one track: queued → running → succeeded | failed | cancelled | dead."""

    __tablename__ = "jobs"
    __table_args__ = (
        # The claim is an index scan over queued jobs in fairness order.
        Index(
            "ix_jobs_queued_vstart",
            "vstart",
            "id",
            sqlite_where=text("status = 'queued'"),
            postgresql_where=text("status = 'queued'"),
        ),
        # The reaper looks only at running jobs whose lease ran out.
        Index(
            "ix_jobs_running_lease",
            "lease_expires_at",
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        # What one engine runs, and whether a suspect is among it (storage/queue/reaper.py).
        Index(
            "ix_jobs_running_owner",
            "lease_owner",
            "suspect",
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        Index("ix_jobs_user_status", "user_id", "status"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(BigInteger)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    source_blob: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str] = mapped_column(String(32), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Its engine died while it ran beside other jobs: it is claimed alone from now on, so that a next
    # death is known to be its own (storage/queue/reaper.py).
    suspect: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    run_after: Mapped[datetime]
    cost: Mapped[float] = mapped_column(Float)
    vstart: Mapped[float] = mapped_column(Float)
    vfinish: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What a job that makes no track found (a /describe: its `Plan`-shaped description), as JSON.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Track(Base):
    """A finished song, with everything needed to regenerate it exactly."""

    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    batch_index: Mapped[int] = mapped_column(Integer, default=0)
    blob_path: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8), default="mp3")
    duration_s: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    caption: Mapped[str] = mapped_column(Text)
    lyrics: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]]
    audio_codes: Mapped[str | None] = mapped_column(Text, nullable=True)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    model: Mapped[dict[str, Any]]
    notice: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The model's own latents of the song (acestep), so a repaint or an extend keeps its samples.
    latents_blob: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # When each sung line starts (`LyricTiming`), the take's score (`TakeScore`) and its LoRA style (`StyleRef`).
    timing: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    score: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    style: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]


class Delivery(Base):
    """Outbox row: where a job's status and result go, and whether they got there."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_open", "platform", "state"),
        # A reply to a posted result finds its song by the result's message id (Telegram's replies).
        Index("ix_deliveries_result", "platform", "chat_id", "result_message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    reply_to_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    interaction_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    extra: Mapped[dict[str, Any]]
    # pending → done (result or error posted) | told (a sentence pointing to /history stood in for a
    #           result whose upload kept being interrupted) | failed (gave up after many attempts)
    #         | unsure (left by older versions; no row enters it now)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    last_status_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_at: Mapped[datetime | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set just before the result is posted and left set if the process dies before marking it:
    # the next process then knows the post may have gone out (see `bot.core.delivery`).
    sending_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # How many times a post was begun again after such an interrupted one.
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The message that carries the posted result, where the platform gives one.
    result_message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class EngineRow(Base):
    """An engine process that is up: it rewrites `seen_at` while it runs (`songbot status` lists them)."""

    __tablename__ = "engines"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(128))
    device: Mapped[str] = mapped_column(String(32))
    backend: Mapped[str] = mapped_column(String(32))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]


# Core tables for the queue's SQL (typed as `Table`, which `__table__` is at run time).
users_table = cast(Table, User.__table__)
queue_state_table = cast(Table, QueueState.__table__)
jobs_table = cast(Table, Job.__table__)
tracks_table = cast(Table, Track.__table__)
deliveries_table = cast(Table, Delivery.__table__)
engines_table = cast(Table, EngineRow.__table__)
