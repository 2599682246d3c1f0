"""The platform-neutral command layer: validate, submit, look up, administer.

Adapters (console, Telegram, Discord) parse their platform's input into the value types of
`parser.py`, call these methods, and show the returned text or the `UserError` sentence.
The methods are async; the database work runs in a thread so that no handler blocks its
event loop. Nothing here waits for the GPU.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from bot.core import render
from bot.core.parser import ADMIN_USAGE, AdminCommand, CoverRequest, SongRequest
from migrations import upgrade
from storage import audio
from storage.accounts import Accounts
from storage.blobs import Blobs
from storage.db import make_engine, utcnow
from storage.errors import BadAudio, LimitError, NotFound, UserError
from storage.library import Library
from storage.outbox import Outbox
from storage.queue import Queue
from storage.settings import Settings
from storage.spec import JobSpec, Plan
from storage.types import QUEUED, DeliveryTarget, JobView, QueueLimits, TrackView, UserRef, UserView
from storage.values import BPM_MAX, BPM_MIN, DEFAULT_COVER_STRENGTH, MIN_DURATION_S

P = ParamSpec("P")
T = TypeVar("T")
# A check run on every /song before it is queued (the composition root adds the LM's context check).
SongCheck = Callable[[SongRequest, int], None]

NOT_AUDIO_TYPES = ("image/", "text/", "application/pdf", "application/zip", "application/json")
NOT_AUDIO_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".txt", ".zip", ".exe", ".doc", ".docx")


@dataclass(frozen=True)
class ResultView:
    """A finished job, ready for an adapter to post."""

    job_id: int
    track: TrackView
    caption: str
    mp3_path: Path


class SongService:
    """Every command, over one queue and one blob directory."""

    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        accounts: Accounts,
        library: Library,
        blobs: Blobs,
        clock: Callable[[], datetime] = utcnow,
        song_checks: Sequence[SongCheck] = (),
    ) -> None:
        self.settings = settings
        self.song_checks = tuple(song_checks)
        self.queue = queue
        self.accounts = accounts
        self.library = library
        self.blobs = blobs
        self.outbox = Outbox(queue.engine)
        self.clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, migrate: bool = True, song_checks: Sequence[SongCheck] = ()
    ) -> SongService:
        """Build the service and its storage from settings (the bot's composition root calls this)."""
        engine = make_engine(settings.db_url)
        if migrate:
            upgrade(engine)
        limits = QueueLimits(
            max_pending_per_user=settings.max_pending_per_user,
            daily_quota=settings.daily_quota,
            max_queued_total=settings.max_queued_total,
            max_attempts=settings.engine_max_attempts,
        )
        return cls(
            settings,
            Queue(engine, limits),
            Accounts(engine),
            Library(engine),
            Blobs(settings.blob_dir),
            song_checks=song_checks,
        )

    async def _run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(function, *args, **kwargs)

    # ------------------------------------------------------------- submitting

    async def submit_song(self, user: UserRef, request: SongRequest, target: DeliveryTarget) -> JobView:
        """Queue a new song. Raises UserError with the sentence to show."""
        self._check_song(request)
        duration = request.duration_s or self.settings.default_duration_s
        for check in self.song_checks:
            await self._run(check, request, duration)
        given = request.duration_s is not None
        spec = JobSpec.build(
            caption=request.description,
            lyrics="" if request.instrumental else request.lyrics,
            instrumental=request.instrumental,
            duration_s=duration,
            duration_given=given,
            duration_max_s=None if given else max(duration, self.settings.max_duration_s),
            bpm=request.bpm,
            key=request.key,
            language=request.language,
            time_signature=request.time_signature,
        )
        seed = request.seed if request.seed is not None else new_seed()
        return await self._run(self._submit, user, "song", spec, seed, target)

    def check_upload(
        self, size_bytes: int | None, mime: str | None, filename: str | None, duration_s: float | None = None
    ) -> None:
        """Refuse an upload before downloading it.

        Too big, empty, clearly not audio, or (when the platform says how long it is) too long or too short.
        """
        name = (filename or "").lower()
        if (mime and mime.lower().startswith(NOT_AUDIO_TYPES)) or name.endswith(NOT_AUDIO_SUFFIXES):
            raise BadAudio("That file is not audio; reply to a song, a voice note or an audio file.")
        if size_bytes is not None and size_bytes == 0:
            raise BadAudio("That file is empty, so there is nothing to cover.")
        if size_bytes is not None and size_bytes > self.settings.max_source_bytes:
            raise LimitError(
                f"That file is {size_bytes / 1048576:.1f} MB; I can cover files up to "
                f"{self.settings.max_source_mb:g} MB."
            )
        if duration_s is not None and duration_s > self.settings.max_source_duration_s:
            raise audio.too_long(self.settings.max_source_duration_s)
        if duration_s is not None and duration_s > 0:
            audio.check_cover_length(duration_s)

    async def submit_cover(
        self, user: UserRef, request: CoverRequest, data: bytes, filename: str | None, target: DeliveryTarget
    ) -> JobView:
        """Validate the uploaded audio, keep it, and queue a cover."""
        self.check_upload(len(data), None, filename)
        if len(request.style) > self.settings.max_prompt_chars:
            raise UserError(f"Keep the style under {self.settings.max_prompt_chars} characters.")
        source = await self._run(audio.decode, data, self.settings.max_source_duration_s, filename)
        seconds = source.shape[0] / audio.SAMPLE_RATE
        audio.check_cover_length(seconds)
        suffix = Path(filename or "upload.bin").suffix[:8] or ".bin"
        blob = await self._run(self.blobs.put_upload, data, suffix)
        spec = JobSpec.build(
            caption=request.style,
            duration_s=round(min(seconds, self.settings.max_duration_s), 2),
            strength=request.strength if request.strength is not None else DEFAULT_COVER_STRENGTH,
        )
        seed = request.seed if request.seed is not None else new_seed()
        return await self._run(self._submit, user, "cover", spec, seed, target, None, blob)

    async def reroll(self, user: UserRef, song_id: int, seed: int | None, target: DeliveryTarget) -> JobView:
        """Regenerate song `song_id`: with its own seed exactly, with another seed a sibling."""
        track = await self._run(self.library.get, song_id)
        parent = await self._run(self.queue.get, song_id)
        if track is None or parent is None:
            raise NotFound(f"There is no finished song #{song_id}.")
        self._require_source(parent)
        # The stored plan and the parent's own spec make the same seed give the same audio.
        spec = parent.spec.model_copy(update={"plan": Plan.model_validate(track.plan) if track.plan else None})
        chosen = seed if seed is not None else new_seed()
        return await self._run(self._submit, user, "reroll", spec, chosen, target, song_id, parent.source_blob)

    def _require_source(self, parent: JobView) -> None:
        """A cover's re-roll needs its uploaded recording, which is deleted after UPLOAD_RETENTION_DAYS."""
        if parent.source_blob and not self.blobs.exists(parent.source_blob):
            raise NotFound(render.source_gone_text(parent.id, self.settings.upload_retention_days))

    def _submit(
        self,
        ref: UserRef,
        kind: str,
        spec: JobSpec,
        seed: int,
        target: DeliveryTarget,
        parent_id: int | None = None,
        source_blob: str | None = None,
    ) -> JobView:
        user = self._user(ref)
        return self.queue.submit(user.id, kind, spec, seed, self.clock(), target, parent_id, source_blob)

    def _user(self, ref: UserRef) -> UserView:
        if not self.settings.user_allowed(ref.platform, ref.platform_id):
            raise LimitError("This bot is private, and you are not on its list of users.")
        return self.accounts.ensure(ref, self.clock(), admin=self.settings.is_admin(ref.platform, ref.platform_id))

    def _check_song(self, request: SongRequest) -> None:
        limits = self.settings
        if len(request.description) > limits.max_prompt_chars:
            raise UserError(f"Keep the description under {limits.max_prompt_chars} characters.")
        if len(request.lyrics) > limits.max_lyrics_chars:
            raise UserError(f"Keep the lyrics under {limits.max_lyrics_chars} characters.")
        if request.duration_s is not None and not MIN_DURATION_S <= request.duration_s <= limits.max_duration_s:
            raise UserError(f"duration must be between {MIN_DURATION_S} and {limits.max_duration_s} seconds.")
        if request.bpm is not None and not BPM_MIN <= request.bpm <= BPM_MAX:
            raise UserError(f"bpm must be between {BPM_MIN} and {BPM_MAX}.")

    # ---------------------------------------------------------------- lookups

    async def history(self, user: UserRef, limit: int = 10) -> list[TrackView]:
        """The user's latest songs, newest first."""
        stored = await self._run(self._user, user)
        return await self._run(self.library.history, stored.id, limit)

    async def track(self, song_id: int) -> TrackView:
        """A finished song. Raises NotFound."""
        track = await self._run(self.library.get, song_id)
        if track is None:
            raise NotFound(f"There is no finished song #{song_id}.")
        return track

    async def lyrics(self, song_id: int) -> str:
        """The lyrics of a song, or a sentence saying it has none."""
        track = await self.track(song_id)
        return render.lyrics_text(track)

    async def queue_info(self, user: UserRef) -> str:
        """The user's queued and running songs with positions and ETAs, as text."""
        stored = await self._run(self._user, user)
        pending = await self._run(self.queue.pending_of, stored.id)
        lines = [await self._run(self.status_text, job) for job in pending]
        counts = await self._run(self.queue.counts)
        return render.queue_text(lines, counts.get(QUEUED, 0))

    async def cancel(self, user: UserRef, job_id: int | None) -> JobView:
        """Cancel one of the user's queued songs (the newest when no id is given)."""
        stored = await self._run(self._user, user)
        if job_id is None:
            queued = [job for job in await self._run(self.queue.pending_of, stored.id) if job.status == QUEUED]
            if not queued:
                raise NotFound("You have no songs waiting in the queue.")
            job_id = queued[-1].id
        owner = None if stored.role == "admin" else stored.id
        return await self._run(self.queue.cancel, job_id, owner, self.clock())

    def status_text(self, job: JobView) -> str:
        """The status line of a job, with its place in line and an ETA while it waits."""
        if job.status != QUEUED:
            return render.status_text(job, None, None)
        ahead, ahead_cost = self.queue.position(job)
        eta = (ahead_cost + job.cost) * self.queue.seconds_per_cost()
        return render.status_text(job, ahead + 1, eta)

    def result(self, job: JobView) -> ResultView | None:
        """The finished song of a succeeded job, or None."""
        track = self.library.get(job.id)
        if track is None:
            return None
        return ResultView(job.id, track, render.result_caption(track), self.blobs.path(track.blob_path))

    def chat_allowed(self, platform: str, chat_id: str) -> bool:
        """Whether the chat (Telegram) or guild (Discord) allowlist admits this place; empty = all."""
        allowed = self.settings.allowed_guild_ids if platform == "discord" else self.settings.allowed_chat_ids
        return not allowed or str(chat_id) in allowed

    # ------------------------------------------------------------------ admin

    async def admin(self, user: UserRef, command: AdminCommand) -> str:
        """Run a parsed text command (`/admin ...` on the console and Telegram)."""
        match command:
            case AdminCommand(action="pause"):
                return await self.pause(user)
            case AdminCommand(action="resume"):
                return await self.resume(user)
            case AdminCommand(action="stats"):
                return await self.stats(user)
            case AdminCommand(action="ban" | "unban", who=UserRef() as who):
                return await (self.ban(user, who) if command.action == "ban" else self.unban(user, who))
            case AdminCommand(action="quota", who=UserRef() as who):
                return await self.set_quota(user, who, command.quota)
        raise UserError(ADMIN_USAGE)

    async def pause(self, admin: UserRef) -> str:
        """Stop taking songs from anyone but admins, and stop the engine claiming."""
        self._require_admin(admin)
        await self._run(self.queue.set_paused, True)
        return "The queue is paused; nobody but admins can add songs."

    async def resume(self, admin: UserRef) -> str:
        """Take songs again."""
        self._require_admin(admin)
        await self._run(self.queue.set_paused, False)
        return "The queue is running again."

    async def stats(self, admin: UserRef) -> str:
        """Jobs per state, users, and whether the queue is paused."""
        self._require_admin(admin)
        counts = await self._run(self.queue.counts)
        return render.stats_text(counts, await self._run(self.accounts.count), await self._run(self.queue.is_paused))

    async def ban(self, admin: UserRef, who: UserRef) -> str:
        """Stop a user from making songs. Raises NotFound if they never used the bot."""
        self._require_admin(admin)
        target = await self._run(self.accounts.find, who.platform, who.platform_id)
        await self._run(self.accounts.set_banned, target.id, True)
        return f"{who.key} is banned."

    async def unban(self, admin: UserRef, who: UserRef) -> str:
        """Let a banned user make songs again."""
        self._require_admin(admin)
        target = await self._run(self.accounts.find, who.platform, who.platform_id)
        await self._run(self.accounts.set_banned, target.id, False)
        return f"{who.key} is no longer banned."

    async def set_quota(self, admin: UserRef, who: UserRef, songs_per_day: int | None) -> str:
        """Give a user their own daily quota (0: no limit; None: back to the default)."""
        self._require_admin(admin)
        if songs_per_day is not None and songs_per_day < 0:
            raise UserError("The quota must be a number of songs a day from 0 (no limit) up.")
        target = await self._run(self.accounts.find, who.platform, who.platform_id)
        await self._run(self.accounts.set_quota, target.id, songs_per_day)
        shown = "the default" if songs_per_day is None else "no limit" if songs_per_day == 0 else songs_per_day
        return f"Daily quota of {who.key} is now {shown}."

    def _require_admin(self, user: UserRef) -> None:
        if not self.settings.is_admin(user.platform, user.platform_id):
            raise LimitError("Only the bot's operators can do that.")


def new_seed() -> int:
    """A fresh uint32 seed."""
    return secrets.randbelow(2**32)
