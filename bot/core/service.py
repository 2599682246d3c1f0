"""The platform-neutral command layer: validate, submit, look up, administer.

Adapters (console, Telegram, Discord) parse their platform's input into the value types of
`parser.py`, call these methods, and show the returned text or the `UserError` sentence.
The methods are async; the database work runs in a thread so that no handler blocks its
event loop. Nothing here waits for the GPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

from bot.core import answers, edits, lyrics, render
from bot.core.answers import Answer
from bot.core.describe import Described, like_this
from bot.core.parser import (
    ADMIN_USAGE,
    AdminCommand,
    CoverRequest,
    ExtendRequest,
    RepaintRequest,
    SongRequest,
    check_cover_words,
)
from migrations import upgrade
from storage.blobs.store import BlobStore
from storage.blobs.stores import open_blobs
from storage.contract.errors import (
    DISK_FULL_AT_SUBMIT,
    BadAudio,
    LimitError,
    NotFound,
    Unavailable,
    UserError,
    disk_full,
)
from storage.contract.spec import Description, Edit, JobSpec
from storage.contract.text import clean_line, clean_lines
from storage.contract.types import (
    DESCRIBE,
    QUEUED,
    SUCCEEDED,
    DeliveryTarget,
    JobView,
    QueueLimits,
    TrackView,
    UserRef,
    UserView,
)
from storage.contract.values import (
    BPM_MAX,
    BPM_MIN,
    DEFAULT_COVER_STRENGTH,
    ID_MAX,
    MAX_DURATION_S,
    MIN_DURATION_S,
    MIN_SOURCE_S,
)
from storage.db import make_engine, utcnow
from storage.media import audio, decoding
from storage.ops.metrics import BotMetrics
from storage.ops.scrub import Scrubber
from storage.private import private_dir
from storage.queue.accounts import Accounts
from storage.queue.best import BestOf
from storage.queue.best import takes_of as best_takes_of
from storage.queue.jobs import Queue
from storage.queue.library import Library
from storage.queue.outbox import Outbox
from storage.settings import Settings
from storage.styles import STYLES_NEED_ACESTEP, find_style, style_names, unknown_style_text

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger("songbot.bot")

# A check run on every /song before it is queued (the composition root adds the LM's context check).
SongCheck = Callable[[SongRequest, int], None]

UPLOAD_SUFFIX = re.compile(r"\.[a-z0-9]{1,7}")
NOT_AUDIO_TYPES = ("image/", "text/", "application/pdf", "application/zip", "application/json")
# What a recording sent to /describe is for, in the upload checks' sentences ("… need at least 3 seconds").
DESCRIBED = "recordings to describe"
NOT_AUDIO_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".txt", ".zip", ".exe", ".doc", ".docx")


@dataclass(frozen=True)
class Clip:
    """An uploaded recording: a cover's source, or the clip a song should sound like."""

    data: bytes
    filename: str | None = None


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
        blobs: BlobStore,
        clock: Callable[[], datetime] = utcnow,
        song_checks: Sequence[SongCheck] = (),
        metrics: BotMetrics | None = None,
        backend: str | None = None,
    ) -> None:
        self.settings = settings
        # What makes the songs, as the composition root resolved ENGINE_BACKEND (said in /help).
        self.backend = backend or settings.engine_backend
        self.metrics = metrics or BotMetrics()
        self.song_checks = tuple(song_checks)
        self.queue = queue
        self.accounts = accounts
        self.library = library
        self.blobs = blobs
        self.outbox = Outbox(queue.engine, queue.scrub)
        self.best = BestOf(queue.engine)
        self.clock = clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        migrate: bool = True,
        song_checks: Sequence[SongCheck] = (),
        backend: str | None = None,
    ) -> SongService:
        """Build the service and its storage from settings (the bot's composition root calls this)."""
        private_dir(settings.data_dir, tighten=True)  # songbot's own folder: the database, the audio, the log
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
            Queue(engine, limits, Scrubber(settings.secrets())),
            Accounts(engine),
            Library(engine),
            open_blobs(settings),
            song_checks=song_checks,
            backend=backend,
        )

    async def _run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except Exception as error:
            if not disk_full(error):
                raise
            log.error("disk full; request refused", extra={"step": getattr(function, "__name__", "?")})
            raise Unavailable(DISK_FULL_AT_SUBMIT) from error

    # ------------------------------------------------------------- submitting

    async def submit_song(self, user: UserRef, request: SongRequest, target: DeliveryTarget) -> JobView:
        """Queue a new song (its first take). Raises UserError with the sentence to show."""
        return (await self.submit_songs(user, request, target))[0]

    async def submit_songs(
        self, user: UserRef, request: SongRequest, target: DeliveryTarget, like: Clip | None = None
    ) -> list[JobView]:
        """Queue a new song, one job per take; `like` is a clip whose sound the song takes (its timbre)."""
        request = cleaned_song(request)
        self._check_song(request)
        style = self.check_style(request.lora, request.lora_scale)
        edits.check_best(request.best, request.takes)
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
            like=like is not None,
            style=style[0],
            style_scale=style[1],
            best_of=request.best,
        )
        takes = self._takes(request.seed, request.takes, target, request.best)  # refused before an upload is kept
        blob = (await self._keep_upload(like, "clips"))[0] if like is not None else None
        return await self._run(self._submit_takes, user, "song", spec, takes, None, blob)

    def _takes(
        self, seed: int | None, takes: int, target: DeliveryTarget, best: int = 1
    ) -> list[tuple[int, DeliveryTarget | None]]:
        """One (seed, target) per take; the takes of `best=N` share the first take's target (one status message)."""
        edits.check_best(best, takes)
        if best > 1:
            seeds = edits.take_seeds(seed, best, consecutive=True)
            return list(zip(seeds, edits.best_targets(target, best), strict=True))
        return list(zip(edits.take_seeds(seed, takes), edits.take_targets(target, takes), strict=True))

    async def _keep_upload(self, clip: Clip, what: str) -> tuple[str, float]:
        """Check an uploaded recording (size, type, length) and keep it; returns its blob path and length.

        Args:
            clip: The recording as uploaded.
            what: What it is for: "covers" (a cover's source), "clips" (a song's sound) or DESCRIBED.
        """
        clip = cleaned_clip(clip)
        self.check_upload(len(clip.data), None, clip.filename, what=what)
        # Probed, not decoded: the engine decodes it once (storage/media/decoding.py)
        seconds = await self._run(decoding.probe, clip.data, self.settings.max_source_duration_s)
        audio.check_cover_length(seconds, what, shortest_source_s(what))
        return await self._run(self.blobs.put_upload, clip.data, upload_suffix(clip.filename)), seconds

    def check_upload(
        self,
        size_bytes: int | None,
        mime: str | None,
        filename: str | None,
        duration_s: float | None = None,
        what: str = "covers",
    ) -> None:
        """Refuse an upload before downloading it.

        Too big, empty, clearly not audio, or (when the platform says how long it is) too long or too short.
        """
        name = clean_line(filename or "").lower()
        if (mime and mime.lower().startswith(NOT_AUDIO_TYPES)) or name.endswith(NOT_AUDIO_SUFFIXES):
            raise BadAudio("That file is not audio; reply to a song, a voice note or an audio file.")
        if size_bytes is not None and size_bytes == 0:
            raise BadAudio("That file is empty; send a song, a voice note or an audio file.")
        if size_bytes is not None and size_bytes > self.settings.max_source_bytes:
            raise LimitError(
                f"That file is {size_bytes / 1048576:.1f} MB; I can take files up to "
                f"{self.settings.max_source_mb:g} MB."
            )
        if duration_s is not None and duration_s > self.settings.max_source_duration_s:
            raise audio.too_long(self.settings.max_source_duration_s)
        if duration_s is not None and duration_s > 0:
            audio.check_cover_length(duration_s, what, shortest_source_s(what))

    async def submit_cover(
        self, user: UserRef, request: CoverRequest, data: bytes, filename: str | None, target: DeliveryTarget
    ) -> JobView:
        """Validate the uploaded audio, keep it, and queue a cover (its first take)."""
        return (await self.submit_covers(user, request, Clip(data, filename), target))[0]

    async def submit_covers(
        self, user: UserRef, request: CoverRequest, clip: Clip, target: DeliveryTarget
    ) -> list[JobView]:
        """Validate the uploaded audio, keep it, and queue a cover, one job per take.

        New lyrics and their language go into the spec as a song's do; the engine sings them instead
        of the source's words, as upstream's cover does with its `lyrics` and `vocal_language`.
        """
        request = cleaned_cover(request)
        takes = self._takes(request.seed, request.takes, target, request.best)  # refused before the upload is kept
        if len(request.style) > self.settings.max_prompt_chars:
            raise UserError(f"Keep the style under {self.settings.max_prompt_chars} characters.")
        if len(request.lyrics) > self.settings.max_lyrics_chars:
            raise UserError(f"Keep the lyrics under {self.settings.max_lyrics_chars} characters.")
        check_cover_words(request.lyrics, request.instrumental)  # every adapter, the Discord box too
        style = self.check_style(request.lora, request.lora_scale)  # refused before the upload is kept
        blob, seconds = await self._keep_upload(clip, "covers")
        spec = JobSpec.build(
            caption=request.style,
            lyrics=request.lyrics,
            language=request.language,
            instrumental=request.instrumental,
            duration_s=round(min(seconds, self.settings.max_duration_s), 2),
            strength=request.strength if request.strength is not None else DEFAULT_COVER_STRENGTH,
            style=style[0],
            style_scale=style[1],
            best_of=request.best,
        )
        return await self._run(self._submit_takes, user, "cover", spec, takes, None, blob)

    async def submit_describe(self, user: UserRef, clip: Clip, target: DeliveryTarget) -> JobView:
        """Check an uploaded recording exactly as a cover's, keep it, and queue a `describe` of it.

        It runs in the engine like any job (fair-queued, counted against the limits), priced by
        `fairness.price` as the cheap job it is.
        """
        blob, seconds = await self._keep_upload(clip, DESCRIBED)
        spec = JobSpec.build(duration_s=round(min(seconds, MAX_DURATION_S), 2))
        takes = self._takes(None, 1, target)
        return (await self._run(self._submit_takes, user, DESCRIBE, spec, takes, None, blob))[0]

    def description(self, job: JobView) -> Described | None:
        """The reading of a succeeded `describe` job with the song it offers, or None."""
        stored = Description.from_column(job.result) if job.kind == DESCRIBE else None  # read with the job
        return Described(job.id, stored, like_this(stored, self.settings)) if stored is not None else None

    async def make_like(self, user: UserRef, job_id: int, target: DeliveryTarget) -> JobView:
        """Make one like this: queue, for `user`, a song with exactly the fields the description showed."""
        _require_song_id(job_id)
        job = await self._run(self.queue.get, job_id)
        described = await self._run(self.description, job) if job is not None and job.status == SUCCEEDED else None
        if described is None:
            raise NotFound(f"There is no finished description #{job_id}.")
        return await self.submit_song(user, described.like.song_request(), target)

    async def reroll(self, user: UserRef, song_id: int, seed: int | None, target: DeliveryTarget) -> JobView:
        """Regenerate song `song_id`: with its own seed exactly; without a seed, a new take (new codes).

        A re-roll of a repaint or an extend repeats the same change of the same song with the new seed.
        """
        track, parent = await self._finished(song_id)
        self._require_source(parent)
        spec = edits.reroll_spec(parent, track, seed)
        chosen = seed if seed is not None else new_seed()
        return await self._run(self._submit, user, "reroll", spec, chosen, target, song_id, parent.source_blob)

    async def repaint(self, user: UserRef, request: RepaintRequest, target: DeliveryTarget) -> JobView:
        """Regenerate a part of one of the user's songs; the rest keeps its samples."""
        track, parent = await self._own_song(user, request.song_id, "repaint")
        edit = edits.repaint_edit(track, request.start_s, request.end_s)
        style = self.check_style(request.lora, request.lora_scale)
        return await self._edit(user, parent, track, edit, request.caption, target, style)

    async def extend(self, user: UserRef, request: ExtendRequest, target: DeliveryTarget) -> JobView:
        """Continue one of the user's songs by some seconds; what was there stays."""
        track, parent = await self._own_song(user, request.song_id, "extend")
        edit = edits.extend_edit(track, request.seconds, self.settings.max_duration_s)
        style = self.check_style(request.lora, request.lora_scale)
        return await self._edit(user, parent, track, edit, request.caption, target, style)

    async def extend_button_seconds(self, song_id: int) -> int:
        """What the ➕ button under song `song_id` adds."""
        return edits.extend_button_seconds(await self.track(song_id), self.settings.max_duration_s)

    async def _edit(
        self,
        user: UserRef,
        parent: JobView,
        track: TrackView,
        edit: Edit,
        caption: str,
        target: DeliveryTarget,
        style: tuple[str | None, float | None] | None = None,
    ) -> JobView:
        caption = clean_line(caption)
        if len(caption) > self.settings.max_prompt_chars:
            raise UserError(f"Keep the caption under {self.settings.max_prompt_chars} characters.")
        # A song like a clip stays like it while the clip is kept (uploads are deleted after a while).
        blob = parent.source_blob if parent.spec.like and parent.source_blob else None
        blob = blob if blob is not None and self.blobs.exists(blob) else None
        spec = edits.edit_spec(parent, track, edit, caption, like=blob is not None, style=style)
        seed = new_seed()
        return await self._run(self._submit, user, edit.task, spec, seed, target, track.job_id, blob)

    async def _own_song(self, user: UserRef, song_id: int, verb: str) -> tuple[TrackView, JobView]:
        """A finished song of this user (an admin may change anyone's). Raises NotFound or UserError."""
        track, parent = await self._finished(song_id)
        stored = await self._run(self._user, user)
        if parent.user_id != stored.id and stored.role != "admin":
            raise UserError(f"Song #{song_id} is not yours; you can {verb} only your own songs.")
        return track, parent

    async def _finished(self, song_id: int) -> tuple[TrackView, JobView]:
        """Song `song_id`'s track and job (every lookup of a finished song comes here). Raises NotFound."""
        _require_song_id(song_id)
        track = await self._run(self.library.get, song_id)
        job = await self._run(self.queue.get, song_id) if track is not None else None
        if track is None or job is None:
            raise NotFound(f"There is no finished song #{song_id}.")
        return track, job

    def _require_source(self, parent: JobView) -> None:
        """A cover's re-roll needs its uploaded recording, which is deleted after UPLOAD_RETENTION_DAYS."""
        if parent.source_blob and not self.blobs.exists(parent.source_blob):
            raise NotFound(render.source_gone_text(parent.id, self.settings.upload_retention_days, parent.spec.like))

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
        job = self.queue.submit(user.id, kind, spec, seed, self.clock(), target, parent_id, source_blob)
        self.metrics.submitted.labels(kind, ref.platform).inc()
        return job

    def _submit_takes(
        self,
        ref: UserRef,
        kind: str,
        spec: JobSpec,
        takes: list[tuple[int, DeliveryTarget | None]],
        parent_id: int | None = None,
        source_blob: str | None = None,
    ) -> list[JobView]:
        user = self._user(ref)
        jobs = self.queue.submit_takes(user.id, kind, spec, takes, self.clock(), parent_id, source_blob)
        self.metrics.submitted.labels(kind, ref.platform).inc(len(jobs))
        return jobs

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

    # ------------------------------------------------------------------ styles

    def style_names(self) -> list[str]:
        """The house styles installed under MODEL_DIR/loras/ (read here: the bot and the engine share MODEL_DIR)."""
        return style_names(self.settings.model_dir)

    def styles_text(self) -> str:
        """/styles: the house styles, or why there are none."""
        return render.styles_text(self.style_names(), self.backend)

    def check_style(self, name: str | None, scale: float | None) -> tuple[str | None, float | None]:
        """A request's style as installed (its folder's spelling) and scale; (None, None) without one.

        Raises:
            UserError: the bot makes sketches, or no style has that name.
        """
        if name is None:
            return None, None
        if self.backend == "sketch":
            raise UserError(STYLES_NEED_ACESTEP)
        found = find_style(self.settings.model_dir, name.strip())
        if found is None:
            raise UserError(unknown_style_text(name.strip(), self.style_names()))
        return found, scale

    # ---------------------------------------------------------------- lookups

    async def history(self, user: UserRef, limit: int = 10) -> list[TrackView]:
        """The user's latest songs, newest first."""
        stored = await self._run(self._user, user)
        return await self._run(self.library.history, stored.id, limit)

    async def track(self, song_id: int) -> TrackView:
        """A finished song. Raises NotFound."""
        return (await self._finished(song_id))[0]

    async def lyrics(self, song_id: int) -> str:
        """The lyrics of a song (timed where the song is), or a sentence saying it has none."""
        track = await self.track(song_id)
        return answers.lyrics_answer(track).text

    async def lyrics_for(self, user: UserRef, song_id: int, target: DeliveryTarget) -> Answer:
        """/lyrics and 📝: the timed lines and an LRC file, or a sentence (instrumental, can't be timed).

        A song with lyrics stored without their timing (made before timing was kept) is timed on request:
        a cheap `timing` job, fair-queued like any other, whose answer the delivery loop posts to `target`;
        the answer returned now says it is coming (`Answer.queued` is the job). Asked again while that job
        waits, it says the same and queues nothing more.
        """
        track, parent = await self._finished(song_id)
        if track.timing is not None or not lyrics.can_be_timed(track):
            return answers.lyrics_answer(track)
        stored = await self._run(self._user, user)
        pending = await self._run(self.queue.pending_of, stored.id)
        if any(job.kind == "timing" and job.parent_id == song_id for job in pending):
            return Answer(lyrics.timing_queued_text(song_id), song=track)  # pressed again: the one job answers
        spec = lyrics.timing_spec(parent, track)
        job = await self._run(self._submit, user, "timing", spec, track.seed, target, song_id)
        return Answer(lyrics.timing_queued_text(song_id), song=track, queued=job)

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
        _require_song_id(job_id)
        owner = None if stored.role == "admin" else stored.id
        cancelled = await self._run(self.queue.cancel, job_id, owner, self.clock())
        await self._run(self._cancel_other_takes, cancelled, owner)
        return cancelled

    def _cancel_other_takes(self, job: JobView, owner: int | None) -> None:
        """A `best=N` group goes with its first take (the group's id): its other waiting takes are cancelled too.

        A take already running or finished ends on its own, and the group posts the best of what was made.
        """
        delivery = self.outbox.for_job(job.id)
        takes = best_takes_of(delivery) if delivery is not None else None
        for take in (takes or ())[1:]:
            with contextlib.suppress(UserError):  # running or finished: it is not cancelled
                self.queue.cancel(take, owner, self.clock())

    def status_text(self, job: JobView) -> str:
        """The status line of a job, with its place in line and an ETA while it waits."""
        if job.status != QUEUED:
            return render.status_text(job, None, None)
        ahead, ahead_cost = self.queue.position(job)
        eta = (ahead_cost + job.cost) * self.queue.seconds_per_cost()
        return render.status_text(job, ahead + 1, eta)

    def best_status_text(self, takes: Sequence[int]) -> str:
        """The one status message of a `best=N` group: how many takes are made, and where the next one is."""
        jobs = self.best.takes(takes)
        waiting = [job for job in jobs if not job.finished]
        return render.best_status_text(
            len(takes), len(jobs) - len(waiting), self.status_text(waiting[0]) if waiting else None
        )

    def result(self, job: JobView) -> ResultView | None:
        """The finished song of a succeeded job, or None."""
        track = self.library.get(job.id)
        if track is None:
            return None
        return ResultView(job.id, track, render.result_caption(track), self.blobs.local_path(track.blob_path))

    def help_text(self) -> str:
        """/help on every platform: the backend that makes the songs, this bot's limits and upload retention."""
        s = self.settings
        return render.help_text(
            s.max_pending_per_user,
            s.daily_quota,
            MIN_DURATION_S,
            s.max_duration_s,
            s.max_source_mb,
            s.upload_retention_days,
            self.backend,
        )

    async def song_of_result(self, platform: str, chat_id: str, message_id: str) -> int | None:
        """The song whose posted result is message `message_id` of that chat (a reply names it so), or None."""
        return await self._run(self.outbox.song_of_result, platform, chat_id, message_id)

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


def cleaned_song(request: SongRequest) -> SongRequest:
    """The request with its description and lyrics free of control characters (lyrics keep their lines).

    Raises:
        UserError: nothing but control characters was given as the description.
    """
    description = clean_line(request.description)
    if not description:
        raise UserError("Tell me what the song should be about, for example: /song lo-fi rain at night")
    return replace(request, description=description, lyrics=clean_lines(request.lyrics).strip("\n"))


def cleaned_cover(request: CoverRequest) -> CoverRequest:
    """The request with its style and new lyrics free of control characters (lyrics keep their lines)."""
    return replace(request, style=clean_line(request.style), lyrics=clean_lines(request.lyrics).strip("\n"))


def shortest_source_s(what: str) -> float:
    """The shortest recording allowed for `what`.

    A cover's source (and a recording to describe) may be as short as MIN_SOURCE_S (the engine pads
    it, as upstream does); a clip to sound like is the song's timbre reference and must be as long as a song.
    """
    return MIN_DURATION_S if what == "clips" else MIN_SOURCE_S


def cleaned_clip(clip: Clip) -> Clip:
    """The clip with its file name cleaned of control characters (a NUL in a name breaks file calls)."""
    return Clip(clip.data, clean_line(clip.filename) if clip.filename else None)


def upload_suffix(filename: str | None) -> str:
    """The stored upload's suffix: the file name's own when it is a plain one (`.mp3`), else `.bin`."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if UPLOAD_SUFFIX.fullmatch(suffix) else ".bin"


def _require_song_id(song_id: int) -> None:
    """Ids from any platform (text, options, buttons) that no job can have get a sentence, not a database error."""
    if not 1 <= song_id <= ID_MAX:
        raise NotFound(f"There is no song #{song_id}.")


def new_seed() -> int:
    """A fresh uint32 seed."""
    return secrets.randbelow(2**32)
