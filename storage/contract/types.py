"""Plain value types that cross the storage boundary (no ORM objects leave `storage/`).

A track's metadata, model, plan and edit are the typed results of `results.py` and `spec.py`, never dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.contract.results import LyricTiming, ModelInfo, StyleRef, TakeScore, TrackMeta
from storage.contract.spec import Edit, JobSpec, Plan

# Job states. Terminal states never change again.
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, DEAD = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "dead",
)
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, DEAD})
KINDS = ("song", "cover", "reroll", "repaint", "extend", "describe", "timing")
# A job that makes no track and is watched like a song (status messages, the daily quota): its result is a
# `Description` in `jobs.result`, posted by the delivery loop's own branch for it (`bot/core/describe.py`).
DESCRIBE = "describe"
# Kinds answered in one reply, with no status message and outside the daily quota of songs: the job makes no
# track, ends with `jobs.result` (a `Record` of `results.py`), and the bot's delivery loop posts it through the
# renderer registered for its kind (`bot/core/answers.py`). `timing`: a stored song's lyrics timed (issue 22).
TRACKLESS_KINDS = frozenset({"timing"})


@dataclass(frozen=True)
class UserRef:
    """Who is asking, as the platform knows them."""

    platform: str
    platform_id: str
    display_name: str = ""

    @property
    def key(self) -> str:
        """`platform:id`, the form used in settings (admins, allowlists)."""
        return f"{self.platform}:{self.platform_id}"


@dataclass(frozen=True)
class UserView:
    """A stored user."""

    id: int
    platform: str
    platform_id: str
    display_name: str
    role: str
    banned: bool
    weight: float
    daily_quota: int | None


@dataclass(frozen=True)
class DeliveryTarget:
    """Where a job's status and result should go.

    Args:
        platform: `telegram`, `discord` or `console`.
        chat_id: The chat or channel.
        reply_to_message_id: The user's message to reply to.
        status_message_id: An existing status message to edit, if the adapter already sent one.
        interaction_token: Discord's interaction token, valid until `token_expires_at`.
        token_expires_at: Naive UTC expiry of the interaction token.
        extra: Anything else the adapter needs later (JSON-serialisable).
    """

    platform: str
    chat_id: str
    reply_to_message_id: str | None = None
    status_message_id: str | None = None
    interaction_token: str | None = None
    token_expires_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobView:
    """A job as the bot and the engine see it."""

    id: int
    user_id: int
    kind: str
    status: str
    stage: str
    progress: float
    seed: int
    spec: JobSpec
    parent_id: int | None
    source_blob: str | None
    attempts: int
    error: str | None
    cost: float
    vstart: float
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None = None
    result: dict[str, Any] | None = None  # a trackless job's result (`TRACKLESS_KINDS`), read by its kind's Record

    @property
    def makes_track(self) -> bool:
        """Whether this job ends with a track (a song); a trackless one ends with `result`."""
        return self.kind not in TRACKLESS_KINDS

    @property
    def finished(self) -> bool:
        """Whether the job reached a state that never changes again."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class TrackView:
    """A finished song (song id = its job id)."""

    job_id: int
    blob_path: str
    format: str
    duration_s: float
    seed: int
    sha256: str
    title: str
    caption: str
    lyrics: str
    meta: TrackMeta
    plan: Plan | None
    model: ModelInfo
    notice: str | None
    created_at: datetime
    kind: str = "song"
    parent_id: int | None = None
    user_id: int | None = None
    latents_blob: str | None = None
    edit: Edit | None = None
    like: bool = False
    timing: LyricTiming | None = None
    score: TakeScore | None = None
    style: StyleRef | None = None


@dataclass(frozen=True)
class NewTrack:
    """What the engine stores when a job succeeds."""

    blob_path: str
    duration_s: float
    seed: int
    sha256: str
    title: str
    caption: str
    lyrics: str
    meta: TrackMeta
    model: ModelInfo
    plan: Plan | None = None
    notice: str | None = None
    batch_index: int = 0
    format: str = "mp3"
    latents_blob: str | None = None
    timing: LyricTiming | None = None
    score: TakeScore | None = None
    style: StyleRef | None = None


@dataclass(frozen=True)
class DeliveryView:
    """An outbox row."""

    id: int
    job_id: int
    platform: str
    chat_id: str
    reply_to_message_id: str | None
    status_message_id: str | None
    interaction_token: str | None
    token_expires_at: datetime | None
    extra: dict[str, Any]
    state: str
    last_status_text: str | None
    last_status_at: datetime | None
    attempts: int
    sending_at: datetime | None = None
    resends: int = 0


@dataclass(frozen=True)
class QueueLimits:
    """The limits the queue enforces on submit."""

    max_pending_per_user: int = 3
    daily_quota: int = 30
    max_queued_total: int = 1000
    max_attempts: int = 3
