"""Small pieces every Discord handler shares: who is asking, where the result goes, how to refuse.

Handlers acknowledge first (Discord drops an interaction not answered within 3 s), then submit; a
refusal is always one ephemeral sentence, never a traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

import discord
from discord.utils import MISSING, escape_markdown, escape_mentions

from storage.contract.errors import GENERIC_FAILURE, UserError
from storage.contract.types import DeliveryTarget, JobView, UserRef

if TYPE_CHECKING:
    from bot.core.service import SongService

log = logging.getLogger("songbot.discord")

PLATFORM = "discord"
MESSAGE_LIMIT = 2000
# What the original response is called in the interaction webhook routes; stored as the status message.
ORIGINAL = "@original"
NO_MENTIONS = discord.AllowedMentions.none()

Submit = Callable[[DeliveryTarget], Awaitable[JobView | list[JobView]]]


def escape(text: str) -> str:
    """User-derived text made inert: no markdown, no @everyone/@here, no user or role pings."""
    return escape_mentions(escape_markdown(text))


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """At most `limit` characters (Discord refuses longer messages)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def service_of(interaction: discord.Interaction) -> SongService:
    """The service of the client that received `interaction` (set by `SongbotClient`)."""
    return cast("SongService", interaction.client.service)  # type: ignore[attr-defined]


def user_ref(interaction: discord.Interaction) -> UserRef:
    """The person behind an interaction, as the core knows them."""
    return UserRef(PLATFORM, str(interaction.user.id), interaction.user.display_name)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """The storage layer keeps naive UTC datetimes."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def delivery_target(interaction: discord.Interaction) -> DeliveryTarget:
    """Deliver through this interaction's original response while its 15-minute token lasts.

    `extra` keeps what delivery needs later, possibly in another process: the application id (for the
    webhook URL), the requester (the only person a late channel message may mention), the guild and
    the upload limit Discord gave this interaction.
    """
    return DeliveryTarget(
        platform=PLATFORM,
        chat_id=str(interaction.channel_id),
        status_message_id=ORIGINAL,
        interaction_token=interaction.token,
        token_expires_at=naive_utc(interaction.expires_at),
        extra={
            "application_id": str(interaction.application_id),
            "requester_id": str(interaction.user.id),
            "guild_id": str(interaction.guild_id) if interaction.guild_id else None,
            "filesize_limit": interaction.filesize_limit,
        },
    )


async def refuse(interaction: discord.Interaction, sentence: str) -> None:
    """Tell only the user, in one sentence, why nothing happens."""
    text = clip(escape(sentence))
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    # A public "thinking…" message is up: take it away and answer privately instead.
    with contextlib.suppress(discord.HTTPException):
        await interaction.delete_original_response()
    await interaction.followup.send(text, ephemeral=True)


async def reply_private(interaction: discord.Interaction, text: str, view: discord.ui.View = MISSING) -> None:
    """An ephemeral answer (as the initial response, or a follow-up once deferred)."""
    content = clip(escape(text))
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=True, view=view)
    else:
        await interaction.response.send_message(content, ephemeral=True, view=view)


async def submit_deferred(interaction: discord.Interaction, submit: Submit) -> JobView | None:
    """Defer publicly (the job's status message), then submit; refuse privately on a UserError."""
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True)
    try:
        submitted = await submit(delivery_target(interaction))
    except UserError as error:
        await refuse(interaction, error.user_message)
        return None
    except Exception:
        # Buttons and modals have no tree error handler: never leave a "thinking…" message behind.
        log.exception("submit failed", extra={"interaction": interaction.id})
        await refuse(interaction, GENERIC_FAILURE)
        return None
    job = submitted[0] if isinstance(submitted, list) else submitted  # the first of several takes
    log.info("job submitted", extra={"job": job.id, "kind": job.kind, "interaction": interaction.id})
    return job


async def guard(interaction: discord.Interaction) -> bool:
    """The guild allowlist: outside it, say so privately and stop."""
    place = str(interaction.guild_id) if interaction.guild_id else "dm"
    if service_of(interaction).chat_allowed(PLATFORM, place):
        return True
    await refuse(interaction, "This bot is not enabled here.")
    return False
