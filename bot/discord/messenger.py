"""Delivery to Discord: the job's status in the interaction's original response, then the song.

The delivery loop (`bot.core.delivery`) calls these methods, possibly long after the interaction,
possibly in another process: everything needed comes from the `DeliveryView` (application id,
interaction token and its expiry, channel, requester). While the 15-minute token is valid the
original response is edited through the interaction webhook; after that (or if Discord refuses the
token) the result goes to the channel as a message that mentions only the requester. Edits of the
original response are the same however often they are repeated, and every channel post carries a
nonce derived from the delivery row, so a post repeated after a crash is dropped by Discord. Status edits
are throttled by the loop (`STATUS_EDIT_INTERVAL_S`, default 3 s, well inside the webhook limit of
5 requests per 2 s); a 429 is retried by discord.py after `retry_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import discord

from bot.core import render
from bot.core.answers import Answer
from bot.core.delivery import with_repeat_note
from bot.core.describe import Described
from bot.core.service import ResultView
from bot.discord.components import result_view
from bot.discord.describe import describe_message
from bot.discord.lyrics import answer_files
from bot.discord.replies import NO_MENTIONS, ORIGINAL, PLATFORM, clip, escape
from storage.contract.errors import BadAudio
from storage.contract.types import DeliveryView
from storage.db import utcnow
from storage.media.audio import fit_mp3

log = logging.getLogger("songbot.discord")

# Stop using a token this long before it expires: an upload can take a while.
TOKEN_MARGIN = dt.timedelta(seconds=60)
# Discord's default per-file limit when neither the interaction nor the guild says otherwise.
DEFAULT_FILESIZE_LIMIT = 10 * 1024 * 1024
# discord.py types webhook message ids as int, but its routes take the "@original" alias as well.
ORIGINAL_MESSAGE = cast("int", ORIGINAL)
# Discord answers these when an interaction token is no longer usable.
TOKEN_GONE_STATUSES = frozenset({401, 404})


class DiscordMessenger:
    """The Messenger half of the Discord adapter (see `bot.core.delivery.Messenger`).

    Args:
        client: A logged-in discord.py client (its HTTP session and connection state are used).
        clock: Naive-UTC now, passed in so tests control time.
    """

    platform = PLATFORM

    def __init__(self, client: discord.Client, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.client = client
        self.clock = clock

    async def show_status(self, delivery: DeliveryView, text: str) -> str | None:
        """Edit the original response, or post/edit a status message in the channel once it expired."""
        content = clip(escape(text))

        async def edit_original() -> str:
            await self._webhook(delivery).edit_message(ORIGINAL_MESSAGE, content=content, allowed_mentions=NO_MENTIONS)
            return ORIGINAL

        return await self._original_or(delivery, edit_original, lambda: self._channel_status(delivery, content))

    async def send_result(self, delivery: DeliveryView, result: ResultView) -> None:
        """Post the MP3 (re-encoded to fit the upload limit), its caption and the buttons."""
        valid = self._token_valid(delivery)
        caption = clip(escape(result.caption), 1900)
        # Editing the original response again makes no copy; a channel resend may, once Discord has
        # forgotten its nonce: that one says so.
        channel_caption = clip(escape(with_repeat_note(delivery, result.caption)), 1900)

        async def edit_original() -> None:
            webhook = self._webhook(delivery)
            # The re-encode and the upload can take a while: say so in the status first.
            uploading = f"{render.STAGE_TEXT['uploading']} #{result.job_id}"
            await webhook.edit_message(ORIGINAL_MESSAGE, content=uploading, allowed_mentions=NO_MENTIONS)
            path, note = await _fitted(result, self._size_limit(delivery, True))
            await webhook.edit_message(
                ORIGINAL_MESSAGE,
                content=caption + note,
                attachments=_files(path, result.job_id),
                view=result_view(result.job_id),
                allowed_mentions=NO_MENTIONS,
            )

        async def post_in_channel() -> None:
            path, note = await _fitted(result, self._size_limit(delivery, False))
            await self._channel(delivery).send(
                f"{_mention(delivery)} {channel_caption}{note}",
                files=_files(path, result.job_id),
                view=result_view(result.job_id),
                allowed_mentions=_only_requester(delivery),
                nonce=nonce(delivery, "result"),
            )

        await self._original_or(delivery, edit_original, post_in_channel)
        await self._drop_channel_status(delivery)
        log.info("result posted", extra={"job": result.job_id, "via": "webhook" if valid else "channel"})

    async def send_description(self, delivery: DeliveryView, described: Described) -> None:
        """Post what /describe heard in the original response (more parts as follow-ups), the button last."""
        texts, view = describe_message(described)

        def view_of(index: int) -> discord.ui.View:
            return view if index == len(texts) - 1 else discord.utils.MISSING

        async def edit_original() -> None:
            webhook = self._webhook(delivery)
            await webhook.edit_message(
                ORIGINAL_MESSAGE, content=texts[0], view=view_of(0), allowed_mentions=NO_MENTIONS
            )
            for index, text in enumerate(texts[1:], start=1):
                await webhook.send(text, view=view_of(index), allowed_mentions=NO_MENTIONS)

        async def post_in_channel() -> None:
            for index, text in enumerate(texts):
                first = f"{_mention(delivery)} {clip(with_repeat_note(delivery, text), 1900)}" if index == 0 else text
                await self._channel(delivery).send(
                    first,
                    view=view_of(index),
                    allowed_mentions=_only_requester(delivery),
                    nonce=nonce(delivery, "description", index),
                )

        await self._original_or(delivery, edit_original, post_in_channel)
        await self._drop_channel_status(delivery)

    async def send_error(self, delivery: DeliveryView, text: str) -> None:
        """Replace the public status with a private sentence (or tell the requester in the channel)."""
        content = clip(escape(text))

        async def private_followup() -> None:
            webhook = self._webhook(delivery)
            # Already gone when an interrupted attempt deleted it: go on to the sentence (a refused
            # token fails the send below as well, and the channel takes over).
            with contextlib.suppress(discord.NotFound):
                await webhook.delete_message(ORIGINAL_MESSAGE)
            await webhook.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)

        async def post_in_channel() -> None:
            await self._channel(delivery).send(
                f"{_mention(delivery)} {content}",
                allowed_mentions=_only_requester(delivery),
                nonce=nonce(delivery, "error"),
            )

        await self._original_or(delivery, private_followup, post_in_channel)
        await self._drop_channel_status(delivery)

    async def send_notice(self, delivery: DeliveryView, text: str) -> None:
        """A sentence to the requester; unlike `send_error`, the original response (maybe the song) stays."""
        content = clip(escape(text))

        async def private_followup() -> None:
            await self._webhook(delivery).send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)

        async def post_in_channel() -> None:
            await self._channel(delivery).send(
                f"{_mention(delivery)} {content}",
                allowed_mentions=_only_requester(delivery),
                nonce=nonce(delivery, "notice"),
            )

        await self._original_or(delivery, private_followup, post_in_channel)

    async def send_answer(self, delivery: DeliveryView, answer: Answer) -> None:
        """A trackless job's answer (timed lyrics and the .lrc): in place of the private acknowledgement."""
        content = clip(escape(answer.text))

        async def edit_original() -> None:
            await self._webhook(delivery).edit_message(
                ORIGINAL_MESSAGE, content=content, attachments=answer_files(answer), allowed_mentions=NO_MENTIONS
            )

        async def post_in_channel() -> None:
            await self._channel(delivery).send(
                clip(f"{_mention(delivery)} {escape(with_repeat_note(delivery, answer.text))}"),
                files=answer_files(answer),
                allowed_mentions=_only_requester(delivery),
                nonce=nonce(delivery, "answer"),
            )

        await self._original_or(delivery, edit_original, post_in_channel)

    # ------------------------------------------------------------------ helpers
    async def _original_or(
        self, delivery: DeliveryView, original: Callable[[], Awaitable[Any]], fallback: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Use the interaction webhook while the token is good, else (or if Discord refuses it) `fallback`."""
        if self._token_valid(delivery):
            try:
                return await original()
            except discord.HTTPException as error:
                if error.status not in TOKEN_GONE_STATUSES:
                    raise
                log.info("interaction token refused; using the channel", extra={"job": delivery.job_id})
        return await fallback()

    def _token_valid(self, delivery: DeliveryView) -> bool:
        expires = delivery.token_expires_at
        usable = delivery.interaction_token and delivery.extra.get("application_id") and expires is not None
        return bool(usable) and self.clock() < expires - TOKEN_MARGIN  # type: ignore[operator]

    def _webhook(self, delivery: DeliveryView) -> discord.Webhook:
        app_id = int(delivery.extra["application_id"])
        webhook = discord.Webhook.partial(app_id, delivery.interaction_token or "", client=self.client)
        # An interaction's webhook is an application webhook; `partial` assumes an incoming one, for
        # which discord.py refuses ephemeral follow-ups.
        webhook.type = discord.WebhookType.application
        return webhook

    def _channel(self, delivery: DeliveryView) -> discord.PartialMessageable:
        guild_id = delivery.extra.get("guild_id")
        return self.client.get_partial_messageable(int(delivery.chat_id), guild_id=int(guild_id) if guild_id else None)

    async def _channel_status(self, delivery: DeliveryView, content: str) -> str:
        """Edit the channel status message posted after the token expired, or post one."""
        channel = self._channel(delivery)
        existing = delivery.status_message_id
        if existing and existing.isdigit():
            await channel.get_partial_message(int(existing)).edit(content=content, allowed_mentions=NO_MENTIONS)
            return existing
        message = await channel.send(content, allowed_mentions=NO_MENTIONS, nonce=nonce(delivery, "status"))
        return str(message.id)

    async def _drop_channel_status(self, delivery: DeliveryView) -> None:
        """Remove the channel status message (if the token expired mid-job): the result replaces it."""
        existing = delivery.status_message_id
        if existing and existing.isdigit():
            with contextlib.suppress(discord.HTTPException):
                await self._channel(delivery).get_partial_message(int(existing)).delete()

    def _size_limit(self, delivery: DeliveryView, via_interaction: bool) -> int:
        """The upload limit: the interaction's own, else the guild's (boost tier), else Discord's default."""
        if via_interaction and delivery.extra.get("filesize_limit"):
            return int(delivery.extra["filesize_limit"])
        guild_id = delivery.extra.get("guild_id")
        guild = self.client.get_guild(int(guild_id)) if guild_id else None
        return guild.filesize_limit if guild is not None else DEFAULT_FILESIZE_LIMIT


async def _fitted(result: ResultView, max_bytes: int) -> tuple[Path | None, str]:
    """The MP3 re-encoded to fit `max_bytes`, or no file and the sentence why."""
    try:
        return await asyncio.to_thread(fit_mp3, result.mp3_path, max_bytes), ""
    except BadAudio as error:
        return None, "\n" + escape(error.user_message)


def nonce(delivery: DeliveryView, kind: str, part: int = 0) -> str:
    """The message nonce of one post of a delivery: the same on every try, so Discord keeps one copy.

    discord.py sends `enforce_nonce` with every nonce: Discord then answers a repeat from the same
    author within a few minutes with the message it already created, instead of posting another.
    """
    suffix = str(part) if part else ""  # a post in several messages: each part its own nonce
    return f"songbot-{delivery.id}-{kind[0]}{suffix}"  # Discord takes 25 characters at most


def _files(path: Path | None, job_id: int) -> list[discord.File]:
    return [] if path is None else [discord.File(path, filename=f"song-{job_id}.mp3")]


def _mention(delivery: DeliveryView) -> str:
    return f"<@{int(delivery.extra['requester_id'])}>"


def _only_requester(delivery: DeliveryView) -> discord.AllowedMentions:
    """Ping the requester and nobody else (no @everyone, no roles, no other users)."""
    requester = discord.Object(int(delivery.extra["requester_id"]))
    return discord.AllowedMentions(everyone=False, roles=False, users=[requester], replied_user=False)
