"""JSON payload builders for the fake Discord (tests only).

The shapes follow Discord API v10 as discord.py 2.7 parses them (``state.py``, ``guild.py``,
``message.py``, ``interactions.py``): a field discord.py reads with ``data['x']`` is always present here.
Snowflakes carry the current time, because discord.py derives ``Interaction.created_at`` and
``expires_at`` (the 15-minute token) from the interaction id.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from discord.utils import time_snowflake

Json = dict[str, Any]

# Interaction types (discord-api-docs, "Interaction Type").
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
# Application command option types used by the tests.
OPTION_TYPES = {str: 3, int: 4, bool: 5, float: 10}
ATTACHMENT_OPTION = 11
SUB_COMMAND = 1
# Permission bit that the admin group defaults to.
MANAGE_GUILD = 1 << 5
ALL_PERMISSIONS = (1 << 53) - 1
DEFAULT_ATTACHMENT_LIMIT = 10 * 1024 * 1024


class Snowflakes:
    """Hands out unique snowflakes that encode the current time (as Discord's do)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self) -> str:
        """Return a new snowflake string."""
        now = dt.datetime.now(dt.UTC)
        return str(time_snowflake(now) + (next(self._counter) % (1 << 22)))


def iso_now() -> str:
    """Return the current time as Discord writes timestamps."""
    return dt.datetime.now(dt.UTC).isoformat()


def user(user_id: str, username: str, *, bot: bool = False) -> Json:
    """A user object."""
    return {
        "id": user_id,
        "username": username,
        "global_name": username,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def bot_user(user_id: str, username: str) -> Json:
    """The bot's own user (``GET /users/@me``), with the ClientUser-only fields."""
    return user(user_id, username, bot=True) | {"verified": True, "mfa_enabled": False, "flags": 0}


def member(member_user: Json, *, permissions: int = 0, roles: list[str] | None = None) -> Json:
    """A guild member as interactions carry it (with its computed ``permissions``)."""
    return {
        "user": member_user,
        "nick": None,
        "avatar": None,
        "roles": roles or [],
        "joined_at": iso_now(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": str(permissions),
    }


def text_channel(channel_id: str, guild_id: str, name: str = "general") -> Json:
    """A guild text channel."""
    return {
        "id": channel_id,
        "type": 0,
        "guild_id": guild_id,
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def guild(guild_id: str, name: str, owner_id: str, channels: list[Json], bot: Json) -> Json:
    """A full guild as GUILD_CREATE carries it (everyone role, one member: the bot)."""
    everyone = {
        "id": guild_id,
        "name": "@everyone",
        "color": 0,
        "hoist": False,
        "position": 0,
        "permissions": str(ALL_PERMISSIONS),
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    return {
        "id": guild_id,
        "name": name,
        "icon": None,
        "owner_id": owner_id,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [everyone],
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "large": False,
        "unavailable": False,
        "member_count": 2,
        "joined_at": iso_now(),
        "members": [member(bot)],
        "channels": channels,
        "threads": [],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def attachment(attachment_id: str, filename: str, size: int, url: str, content_type: str | None) -> Json:
    """An attachment object; ``url`` points at the fake's CDN route."""
    data: Json = {
        "id": attachment_id,
        "filename": filename,
        "size": size,
        "url": url,
        "proxy_url": url,
    }
    if content_type is not None:
        data["content_type"] = content_type
    return data


def message(
    message_id: str,
    channel_id: str,
    author: Json,
    *,
    content: str = "",
    attachments: list[Json] | None = None,
    components: list[Json] | None = None,
    flags: int = 0,
    guild_id: str | None = None,
    interaction_id: str | None = None,
) -> Json:
    """A message object (the fields discord.py's ``Message`` requires, plus what the tests inspect)."""
    data: Json = {
        "id": message_id,
        "channel_id": channel_id,
        "author": author,
        "content": content,
        "timestamp": iso_now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "pinned": False,
        "type": 0 if interaction_id is None else 20,
        "flags": flags,
        "components": components or [],
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
    if interaction_id is not None:
        data["interaction_metadata"] = {"id": interaction_id, "type": 2, "user": author}
    return data


def interaction(
    *,
    interaction_id: str,
    application_id: str,
    kind: int,
    token: str,
    guild_id: str,
    channel: Json,
    invoker: Json,
    data: Json,
    attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
    message_payload: Json | None = None,
) -> Json:
    """An INTERACTION_CREATE payload as the gateway dispatches it."""
    payload: Json = {
        "id": interaction_id,
        "application_id": application_id,
        "type": kind,
        "token": token,
        "version": 1,
        "guild_id": guild_id,
        "guild": {"id": guild_id, "locale": "en-US", "features": []},
        "channel_id": channel["id"],
        "channel": channel,
        "member": invoker,
        "app_permissions": str(ALL_PERMISSIONS),
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": guild_id},
        "context": 0,
        "attachment_size_limit": attachment_size_limit,
        "data": data,
    }
    if message_payload is not None:
        payload["message"] = message_payload
    return payload


def option(name: str, value: Any, *, kind: int | None = None) -> Json:
    """A slash command option; its type follows the Python type of ``value`` unless given."""
    return {"name": name, "type": kind if kind is not None else OPTION_TYPES[type(value)], "value": value}


def subcommand(name: str, options: list[Json] | None = None) -> Json:
    """A sub-command option (for command groups such as ``/admin pause``)."""
    return {"name": name, "type": SUB_COMMAND, "options": options or []}
