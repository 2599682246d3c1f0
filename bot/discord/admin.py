"""The /admin command group: pause/resume, ban/unban, quota, stats.

Two locks: Discord shows the group only to members with Manage Server (`default_permissions`, which a
server's admins can change), and the core refuses anyone not listed in ADMIN_IDS (`discord:<user id>`).
"""

from __future__ import annotations

import re

import discord
from discord import app_commands

from bot.discord.replies import reply_private, service_of, user_ref
from storage.errors import UserError

MENTION = re.compile(r"^<@!?([0-9]{1,20})>$")
PLATFORM_ID = re.compile(r"^(discord|telegram|console):[0-9A-Za-z_-]{1,64}$")


def admin_group() -> app_commands.Group:
    """Build the group for one client (commands are never shared between clients)."""
    group = app_commands.Group(
        name="admin",
        description="Operator commands",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    async def run(interaction: discord.Interaction, action: str, arg: str | None = None) -> None:
        service = service_of(interaction)
        await reply_private(interaction, await service.admin(user_ref(interaction), action, arg))

    @group.command(name="pause", description="Stop taking new songs")
    async def pause(interaction: discord.Interaction) -> None:
        await run(interaction, "pause")

    @group.command(name="resume", description="Take new songs again")
    async def resume(interaction: discord.Interaction) -> None:
        await run(interaction, "resume")

    @group.command(name="stats", description="Users and jobs")
    async def stats(interaction: discord.Interaction) -> None:
        await run(interaction, "stats")

    @group.command(name="ban", description="Stop a user from making songs")
    @app_commands.describe(who="A @mention or platform:id, e.g. telegram:12345")
    async def ban(interaction: discord.Interaction, who: str) -> None:
        await run(interaction, "ban", user_key(who))

    @group.command(name="unban", description="Let a user make songs again")
    @app_commands.describe(who="A @mention or platform:id")
    async def unban(interaction: discord.Interaction, who: str) -> None:
        await run(interaction, "unban", user_key(who))

    @group.command(name="quota", description="Set a user's daily song quota")
    @app_commands.describe(who="A @mention or platform:id", songs_per_day="Songs a day")
    async def quota(
        interaction: discord.Interaction, who: str, songs_per_day: app_commands.Range[int, 0, 100000]
    ) -> None:
        await run(interaction, "quota", f"{user_key(who)} {songs_per_day}")

    return group


def user_key(who: str) -> str:
    """`<@123>` → `discord:123`; `platform:id` as is. Raises UserError otherwise."""
    who = who.strip()
    if match := MENTION.match(who):
        return f"discord:{match[1]}"
    if PLATFORM_ID.match(who):
        return who
    raise UserError("Name the user with a @mention or as platform:id, for example telegram:12345.")
