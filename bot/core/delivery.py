"""The delivery loop: moves each job's status message along and posts its result once.

It polls the outbox (`storage.queue.outbox`), never the engine: the engine only writes job rows.
Status edits are throttled per delivery and never repeat a text already shown. A result is
marked delivered only after the adapter returned, so a crash in between means the next bot
process posts it; because the outbox has one row per job, a job that ran twice is still
posted once. The attempt is recorded before the post (`Outbox.begin_send`), so the next process
knows a post was interrupted. No result is left undelivered in silence: an interrupted post is sent
again until it is confirmed or the platform refuses it, and every resend tells the user it may be a
repeat (on Discord the same message nonce also lets Discord keep one copy). An upload interrupted
`MAX_UPLOAD_RESENDS` more times is not tried again (it may be what kills the process); the user gets
one short sentence pointing to `/history` instead, sent again until it is confirmed.

A job that makes no track (a kind in `storage.contract.types.TRACKLESS_KINDS`) shows no status (its
command already said it is coming) and, once it succeeds, is answered by the renderer registered for its
kind, posted with `Messenger.send_answer` (recorded before and marked after the post, like a song); a
failure is its one sentence, as for a song:

    ANSWERERS: Mapping[str, Answerer]                    kind → renderer
    Answerer = Callable[[SongService, JobView], Answer]  runs in a worker thread (it may read the database)

A renderer reads the job's `result` through its kind's `Record` (`storage/contract/results.py`), never by
key. To add such a kind: add it to `TRACKLESS_KINDS`, price it in `storage/queue/fairness.py`, have the
engine complete it with its result, and register its renderer in `ANSWERERS`.

A `describe` job also makes no track, but it is watched like a song (status messages, the daily quota) and
its description comes with a "Make one like this" button: `_post` posts it with `Messenger.send_description`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from bot.core import answers, render
from bot.core.answers import Answer
from bot.core.describe import Described
from bot.core.service import ResultView, SongService
from storage.contract.types import DESCRIBE, SUCCEEDED, DeliveryView, JobView
from storage.db import utcnow
from storage.ops.metrics import is_rate_limited
from storage.ops.repeats import RepeatedErrors
from storage.queue import best
from storage.queue.outbox import DONE, TOLD

log = logging.getLogger("songbot.delivery")

MAX_ATTEMPTS = 8
RETRY_BASE_S = 2.0
# A result's upload interrupted by the death of its process is sent again (marked as a possible repeat:
# Telegram has no idempotency key, and a song lost is worse than a song twice) this many times; then a
# sentence that points to /history takes its place, so the user is always told.
MAX_UPLOAD_RESENDS = 2
REPEAT_NOTE = "↩️ Sent again after an interruption: this may be a repeat."


Answerer = Callable[[SongService, JobView], Answer]


def _timing_answer(service: SongService, job: JobView) -> Answer:
    """`timing`: the song's timed lines and its LRC file."""
    return answers.timing_answer(service.library, job)


# The renderer of each kind of job that makes no track (see the module docstring).
ANSWERERS: Mapping[str, Answerer] = MappingProxyType({"timing": _timing_answer})


def answer_of(service: SongService, job: JobView) -> Answer:
    """The answer to post for a succeeded job that makes no track."""
    answerer = ANSWERERS.get(job.kind)
    if answerer is None:
        raise RuntimeError(f"no answer renderer for jobs of kind {job.kind!r}")
    return answerer(service, job)


class PostUncertain(Exception):
    """A post failed in a way that leaves open whether the platform took it (a timeout, a cut connection)."""


def with_repeat_note(delivery: DeliveryView, text: str) -> str:
    """`text` under a line saying it may be a repeat, when an earlier post of it was interrupted."""
    return f"{REPEAT_NOTE}\n{text}" if delivery.resends else text


def undelivered_text(job_id: int, seed: int) -> str:
    """The sentence sent instead of a song whose upload kept being interrupted: where it is, how to get it."""
    return (
        f"⚠️ Song #{job_id} is ready, but posting it here was interrupted more than once: it is in /history, "
        f"and /reroll {job_id} {seed} makes exactly the same song again."
    )


class Messenger(Protocol):
    """What a platform adapter offers the delivery loop."""

    platform: str

    async def show_status(self, delivery: DeliveryView, text: str) -> str | None:
        """Create or edit the job's status message; return its message id if it has one."""
        ...

    async def send_result(self, delivery: DeliveryView, result: ResultView) -> str | None:
        """Post the finished song; return the id of the message that carries it, where there is one."""
        ...

    async def send_error(self, delivery: DeliveryView, text: str) -> None:
        """Tell the user, in one sentence, that the job ended without a song."""
        ...

    async def send_description(self, delivery: DeliveryView, described: Described) -> str | None:
        """Post what `/describe` heard, with its "Make one like this" button; return the message id, if any."""
        ...

    async def send_notice(self, delivery: DeliveryView, text: str) -> None:
        """Tell the user one sentence about a finished song, leaving whatever was posted of it in place."""
        ...

    async def send_answer(self, delivery: DeliveryView, answer: Answer) -> None:
        """Post the answer of a job that makes no track: its text (under `with_repeat_note`) and its file."""
        ...


class DeliveryLoop:
    """Polls the outbox for every registered platform."""

    def __init__(self, service: SongService, owner: str | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.service = service
        self.outbox = service.outbox
        self.owner = owner or f"bot:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self.messengers: dict[str, Messenger] = {}
        self.interval_s = service.settings.status_edit_interval_s
        self.pass_errors = RepeatedErrors(log, "delivery pass")

    def register(self, messenger: Messenger) -> None:
        """Deliver this platform's jobs through `messenger`."""
        self.messengers[messenger.platform] = messenger

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, then hand back this process's leases."""
        poll_s = self.service.settings.delivery_poll_s
        try:
            while not stop.is_set():
                try:
                    await self.run_once()
                    self.pass_errors.recovered()
                except Exception as error:  # noqa: BLE001 - the database down: logged once, then with a count
                    self.pass_errors.failed(error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll_s)
        finally:
            await asyncio.to_thread(self.outbox.release, self.owner)

    async def run_once(self) -> int:
        """One pass over every platform's open deliveries. Returns how many were looked at."""
        seen = 0
        for platform, messenger in list(self.messengers.items()):
            rows = await asyncio.to_thread(
                self.outbox.claim_open, platform, self.owner, self.clock(), self.service.settings.delivery_lease_s
            )
            seen += len(rows)
            # Chats are served side by side; within one chat, in order, so messages keep their order.
            by_chat: dict[str, list[tuple[DeliveryView, JobView]]] = {}
            for delivery, job in rows:
                by_chat.setdefault(delivery.chat_id, []).append((delivery, job))
            await asyncio.gather(*(self._handle_chat(messenger, chat_rows) for chat_rows in by_chat.values()))
        return seen

    async def _handle_chat(self, messenger: Messenger, rows: list[tuple[DeliveryView, JobView]]) -> None:
        for delivery, job in rows:
            await self._handle(messenger, delivery, job)

    async def _handle(self, messenger: Messenger, delivery: DeliveryView, job: JobView) -> None:
        try:
            takes = best.takes_of(delivery)
            if takes is not None and not best.decided(delivery):
                chosen = await self._choose(delivery, job, takes)
                if chosen is None:  # a take is still being made: the group's one status message moves on
                    await self._update(messenger, delivery, job, takes)
                    return
                delivery, job = chosen
            if job.finished:
                await self._finish(messenger, delivery, job)
            else:
                await self._update(messenger, delivery, job)
        except Exception as error:  # noqa: BLE001 - any platform failure is retried later
            delay = RETRY_BASE_S * 2 ** min(delivery.attempts, 6)
            self._count_retry(delivery.platform, error)
            log.warning(
                "delivery failed; will retry",
                extra={"job": job.id, "platform": delivery.platform, "error": type(error).__name__},
            )
            maybe_sent = isinstance(error, PostUncertain)
            await asyncio.to_thread(
                self.outbox.retry_later, delivery.id, repr(error), self.clock(), delay, MAX_ATTEMPTS, maybe_sent
            )

    async def _choose(
        self, delivery: DeliveryView, job: JobView, takes: tuple[int, ...]
    ) -> tuple[DeliveryView, JobView] | None:
        """A `best=N` group: once every take has ended, the row is pointed at the best take (once, atomically).

        Returns:
            The row and the job it now posts, or None while a take is still open.
        """
        winner = await asyncio.to_thread(self.service.best.decide, delivery.id)
        if winner is None:
            return None
        log.info("best take chosen", extra={"job": winner, "takes": list(takes)})
        chosen = job if winner == job.id else await asyncio.to_thread(self.service.queue.get, winner)
        if chosen is None:
            raise RuntimeError(f"the chosen take {winner} has no job")
        return replace(delivery, job_id=winner), chosen

    async def _update(
        self, messenger: Messenger, delivery: DeliveryView, job: JobView, takes: tuple[int, ...] | None = None
    ) -> None:
        if not job.makes_track:  # its command said it is coming; the answer follows in a moment
            return
        if not self._due(delivery):  # checked first: building the text costs a queue query
            return
        if takes is not None:
            text = await asyncio.to_thread(self.service.best_status_text, takes)
        else:
            text = await asyncio.to_thread(self.service.status_text, job)
        if text == delivery.last_status_text:
            return
        message_id = await messenger.show_status(delivery, text)
        await asyncio.to_thread(self.outbox.record_status, delivery.id, text, message_id, self.clock())

    def _due(self, delivery: DeliveryView) -> bool:
        if delivery.last_status_at is None:
            return True
        return (self.clock() - delivery.last_status_at).total_seconds() >= self.interval_s

    async def _finish(self, messenger: Messenger, delivery: DeliveryView, job: JobView) -> None:
        if job.status == SUCCEEDED and not job.makes_track:
            await self._answer(messenger, delivery, job)
            return
        result: ResultView | Described | None = None
        if job.status == SUCCEEDED:  # a describe job's result is its description, not a track
            finished = self.service.description if job.kind == DESCRIBE else self.service.result
            result = await asyncio.to_thread(finished, job)
        if job.status == SUCCEEDED and result is None:
            raise RuntimeError(f"job {job.id} succeeded without a track")
        # Recorded before the post: if this process dies before `mark_done`, the next one knows.
        resends = await asyncio.to_thread(self.outbox.begin_send, delivery.id, self.owner, self.clock())
        if resends is None:  # another bot process holds this row now
            return
        state, posted = await self._post(messenger, replace(delivery, resends=resends), job, result)
        if await asyncio.to_thread(self.outbox.mark_done, delivery.id, self.owner, self.clock(), state, posted):
            self._count_delivered(delivery.platform, job)
        log.info("delivered", extra={"job": job.id, "platform": delivery.platform, "status": job.status, "as": state})

    async def _answer(self, messenger: Messenger, delivery: DeliveryView, job: JobView) -> None:
        """Post a trackless job's answer, recorded before and marked after the post like a song's."""
        answer = await asyncio.to_thread(answer_of, self.service, job)
        resends = await asyncio.to_thread(self.outbox.begin_send, delivery.id, self.owner, self.clock())
        if resends is None:  # another bot process holds this row now
            return
        await messenger.send_answer(replace(delivery, resends=resends), answer)
        # No message id kept: a reply to an answer names no song of its own (see `Outbox.song_of_result`).
        if await asyncio.to_thread(self.outbox.mark_done, delivery.id, self.owner, self.clock(), DONE):
            self._count_delivered(delivery.platform, job)
        log.info("delivered", extra={"job": job.id, "platform": delivery.platform, "status": job.status, "as": DONE})

    async def _post(
        self, messenger: Messenger, delivery: DeliveryView, job: JobView, result: ResultView | Described | None
    ) -> tuple[str, str | None]:
        """Post the song, the failure sentence, or the sentence that stands in for a song.

        Returns:
            The row's new state, and the id of the message that carries the song (kept: a reply to it finds the
            song), or None.
        """
        if result is None:
            await messenger.send_error(delivery, render.failure_text(job))
            return DONE, None
        if isinstance(result, Described):
            return DONE, await messenger.send_description(delivery, result)
        if delivery.resends > MAX_UPLOAD_RESENDS:
            log.warning("result upload interrupted again; sending a sentence instead", extra={"job": job.id})
            await messenger.send_notice(delivery, undelivered_text(job.id, result.track.seed))
            return TOLD, None
        return DONE, await messenger.send_result(delivery, result)

    def _count_delivered(self, platform: str, job: JobView) -> None:
        metrics = self.service.metrics
        metrics.finished.labels(job.kind, platform, job.status).inc()
        waited_s = (self.clock() - job.created_at).total_seconds()
        metrics.submit_to_delivered.labels(job.kind, platform).observe(max(0.0, waited_s))

    def _count_retry(self, platform: str, error: BaseException) -> None:
        self.service.metrics.delivery_retries.labels(platform).inc()
        if is_rate_limited(error):
            self.service.metrics.rate_limited.labels(platform).inc()
