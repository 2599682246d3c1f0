"""The discord.py client: the command tree, the persistent buttons, the allowlist and error replies."""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.core.service import SongService
from bot.discord.admin import admin_group
from bot.discord.commands import register_commands
from bot.discord.components import LyricsButton, RerollButton
from bot.discord.describe import LikeThisButton
from bot.discord.edits import ExtendButton, RepaintButton
from bot.discord.replies import guard, refuse
from storage.contract.errors import GENERIC_FAILURE, UserError
from storage.settings import Settings

log = logging.getLogger("songbot.discord")


class SongTree(app_commands.CommandTree[discord.Client]):
    """Applies the guild allowlist to every command and turns errors into one private sentence."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The guild allowlist (empty = everywhere)."""
        return await guard(interaction)

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        """A refusal is shown as is; anything else is logged and the user gets a generic sentence."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, UserError):
            await refuse(interaction, cause.user_message)
            return
        if isinstance(cause, app_commands.CheckFailure):
            await refuse(interaction, "You can't use that command here.")
            return
        log.error("command failed", exc_info=cause, extra={"interaction": interaction.id})
        try:
            await refuse(interaction, GENERIC_FAILURE)
        except discord.HTTPException:
            log.warning("could not tell the user about the failure", extra={"interaction": interaction.id})


class SongbotClient(discord.Client):
    """One bot connection with songbot's commands.

    Args:
        settings: The settings (command limits).
        service: The shared command layer; None only to sync the commands (no handler runs then).
        guild_ready_timeout: How long discord.py waits for guilds after READY (tests make it short).
    """

    def __init__(self, settings: Settings, service: SongService | None, *, guild_ready_timeout: float = 2.0) -> None:
        super().__init__(
            intents=discord.Intents.default(),  # interactions need no privileged intent
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
        )
        self.service = service
        self.tree = SongTree(self)
        register_commands(self.tree)
        self.tree.add_command(admin_group())

    async def setup_hook(self) -> None:
        """Buttons posted by any earlier process are handled by these templates."""
        self.add_dynamic_items(RerollButton, LyricsButton, RepaintButton, ExtendButton, LikeThisButton)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        """Leave a server that is not on the allowlist."""
        if self.service is not None and not self.service.chat_allowed("discord", str(guild.id)):
            log.info("leaving a guild outside the allowlist", extra={"guild": guild.id})
            await guild.leave()
