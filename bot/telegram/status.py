"""Status messages: created at once, then edited at most once per chat every few seconds.

Telegram allows about one message per second per chat and answers an edit to the same text with
"message is not modified". The board keeps, per chat, the newest text wanted for each status message and
one worker that applies them through an ``asyncio_throttle.Throttler``: intermediate states may be skipped,
the latest one is always shown, and no edit ever repeats what the message already says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asyncio_throttle import Throttler
from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, TelegramError

log = logging.getLogger(__name__)

_MAX_REMEMBERED = 10_000
_RETRY_POLL_S = 0.1  # how often a throttled worker re-checks; the throttler's default (10 ms) spins


class StatusBoard:
    """Creates and edits the status message of each job, throttled per chat."""

    def __init__(self, bot: Bot, interval_s: float) -> None:
        self._bot = bot
        self._interval_s = interval_s
        self._shown: dict[tuple[int, int], str] = {}
        self._wanted: dict[int, dict[int, str]] = {}
        self._throttlers: dict[int, Throttler] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}

    async def create(
        self, chat_id: int, text: str, *, reply_to: int | None = None, thread_id: int | None = None
    ) -> int:
        """Send a new status message now and return its id."""
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        message = await self._bot.send_message(chat_id, text, reply_parameters=reply, message_thread_id=thread_id)
        self._remember(chat_id, message.message_id, text)
        return message.message_id

    def update(self, chat_id: int, message_id: int, text: str) -> None:
        """Ask for ``text`` on a status message; the chat's worker applies the newest wish in its turn."""
        if self._shown.get((chat_id, message_id)) == text:
            self._wanted.get(chat_id, {}).pop(message_id, None)
            return
        self._wanted.setdefault(chat_id, {})[message_id] = text
        worker = self._workers.get(chat_id)
        if worker is None or worker.done():
            self._workers[chat_id] = asyncio.create_task(self._drain(chat_id), name=f"tg-status-{chat_id}")

    async def edit_now(self, chat_id: int, message_id: int, text: str) -> None:
        """Edit a status message in the chat's next free slot (for final words such as errors)."""
        self._wanted.get(chat_id, {}).pop(message_id, None)
        async with self._throttler(chat_id):
            await self._edit(chat_id, message_id, text)

    async def close(self, timeout_s: float = 2.0) -> None:
        """Give pending edits a moment to land, then stop the workers."""
        workers = [w for w in self._workers.values() if not w.done()]
        if workers:
            await asyncio.wait(workers, timeout=timeout_s)
        for worker in workers:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _drain(self, chat_id: int) -> None:
        wanted = self._wanted.setdefault(chat_id, {})
        while wanted:
            async with self._throttler(chat_id):
                if not wanted:
                    break
                message_id = next(iter(wanted))
                text = wanted.pop(message_id)
                try:
                    await self._edit(chat_id, message_id, text)
                except TelegramError as exc:  # the next wish (or the result) will show the state anyway
                    log.warning("status edit failed", extra={"chat": chat_id, "error": type(exc).__name__})

    async def _edit(self, chat_id: int, message_id: int, text: str) -> None:
        key = (chat_id, message_id)
        if self._shown.get(key) == text:
            return
        try:
            await self._bot.edit_message_text(text, chat_id=chat_id, message_id=message_id)
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                raise
        self._remember(chat_id, message_id, text)

    def _remember(self, chat_id: int, message_id: int, text: str) -> None:
        self._shown.pop((chat_id, message_id), None)
        self._shown[(chat_id, message_id)] = text
        while len(self._shown) > _MAX_REMEMBERED:  # oldest first: finished jobs stop asking
            del self._shown[next(iter(self._shown))]

    def _throttler(self, chat_id: int) -> Throttler:
        if chat_id not in self._throttlers:
            self._throttlers[chat_id] = Throttler(1, max(self._interval_s, 0.001), _RETRY_POLL_S)
        return self._throttlers[chat_id]
