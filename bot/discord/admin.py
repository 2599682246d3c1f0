"""The /admin command group: pause/resume, ban/unban, quota, stats.

Two locks: Discord shows the group only to members with Manage Server (`default_permissions`, which a
server's admins can change), and the core refuses anyone not listed in ADMIN_IDS (`discord:<user id>`).
"""

from __future__ import annotations

import re

import discord
from discord import app_commands

from bot.core.parser import PLATFORM_ID, QUOTA_MAX, parse_user_key
from bot.discord.replies import reply_private, service_of, user_ref
from storage.contract.errors import UserError
from storage.contract.types import UserRef

MENTION = re.compile(r"^<@!?([0-9]{1,20})>$")


def admin_group() -> app_commands.Group:
    """Build the group for one client (commands are never shared between clients)."""
    group = app_commands.Group(
        name="admin",
        description="Operator commands",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @group.command(name="pause", description="Stop taking new songs")
    async def pause(interaction: discord.Interaction) -> None:
        await reply_private(interaction, await service_of(interaction).pause(user_ref(interaction)))

    @group.command(name="resume", description="Take new songs again")
    async def resume(interaction: discord.Interaction) -> None:
        await reply_private(interaction, await service_of(interaction).resume(user_ref(interaction)))

    @group.command(name="stats", description="Users and jobs")
    async def stats(interaction: discord.Interaction) -> None:
        await reply_private(interaction, await service_of(interaction).stats(user_ref(interaction)))

    @group.command(name="ban", description="Stop a user from making songs")
    @app_commands.describe(who="A @mention or platform:id, e.g. telegram:12345")
    async def ban(interaction: discord.Interaction, who: str) -> None:
        service = service_of(interaction)
        await reply_private(interaction, await service.ban(user_ref(interaction), user_key(who)))

    @group.command(name="unban", description="Let a user make songs again")
    @app_commands.describe(who="A @mention or platform:id")
    async def unban(interaction: discord.Interaction, who: str) -> None:
        service = service_of(interaction)
        await reply_private(interaction, await service.unban(user_ref(interaction), user_key(who)))

    @group.command(name="quota", description="Set a user's daily song quota")
    @app_commands.describe(
        who="A @mention or platform:id", songs_per_day="Songs a day (0: no limit); leave it out for the default"
    )
    async def quota(
        interaction: discord.Interaction, who: str, songs_per_day: app_commands.Range[int, 0, QUOTA_MAX] | None = None
    ) -> None:
        service = service_of(interaction)
        await reply_private(interaction, await service.set_quota(user_ref(interaction), user_key(who), songs_per_day))

    return group


def user_key(who: str) -> UserRef:
    """`<@123>` → discord:123; `platform:id` as is. Raises UserError otherwise."""
    who = who.strip()
    if match := MENTION.match(who):
        return UserRef("discord", match[1])
    if PLATFORM_ID.match(who):
        return parse_user_key(who)
    raise UserError("Name the user with a @mention or as platform:id, for example telegram:12345.")
