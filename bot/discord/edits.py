"""Work on a posted song from Discord: the ✏️ Repaint button (a modal asks for the part) and ➕ Extend.

Like the other buttons they are `DynamicItem`s whose custom ids carry the song id only, so they work
on any result, also after a restart. The service checks that the song is the presser's.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.core.parser import ExtendRequest, ParsedCommand, parse_repaint
from bot.discord.replies import guard, refuse, service_of, submit_deferred, user_ref
from storage.errors import UserError


class RepaintButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"songbot:repaint:(?P<job>[0-9]{1,18})"):
    """✏️ Repaint: asks which part (and an optional caption) in a modal, then repaints it."""

    def __init__(self, job_id: int) -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label="Repaint", emoji="✏️", style=discord.ButtonStyle.secondary, custom_id=f"songbot:repaint:{job_id}"
        )
        super().__init__(button)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> RepaintButton:
        """Rebuild the button from a click on any message, old or new."""
        return cls(int(match["job"]))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The guild allowlist applies to buttons too."""
        return await guard(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Ask for the part to repaint."""
        await interaction.response.send_modal(RepaintModal(self.job_id))


class ExtendButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"songbot:extend:(?P<job>[0-9]{1,18})"):
    """➕ Extend: continue the song by half a minute (less near the longest a song may be)."""

    def __init__(self, job_id: int) -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label="Extend", emoji="➕", style=discord.ButtonStyle.secondary, custom_id=f"songbot:extend:{job_id}"
        )
        super().__init__(button)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> ExtendButton:
        """Rebuild the button from a click."""
        return cls(int(match["job"]))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The guild allowlist applies to buttons too."""
        return await guard(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Queue the extension; the new job is the presser's (and only their own songs can be extended)."""
        service = service_of(interaction)
        try:
            seconds = await service.extend_button_seconds(self.job_id)
        except UserError as error:
            await refuse(interaction, error.user_message)
            return
        request = ExtendRequest(self.job_id, seconds)
        await submit_deferred(interaction, lambda target: service.extend(user_ref(interaction), request, target))


class RepaintModal(discord.ui.Modal, title="✏️ Repaint a part"):
    """The part of the song to make again, and an optional caption for it."""

    span: discord.ui.TextInput[RepaintModal] = discord.ui.TextInput(
        label="Part (start-end, seconds or m:ss)", placeholder="0:30-0:45", max_length=24, custom_id="span"
    )
    caption: discord.ui.TextInput[RepaintModal] = discord.ui.TextInput(
        label="Caption (optional)", placeholder="a guitar solo", required=False, max_length=500, custom_id="caption"
    )

    def __init__(self, job_id: int) -> None:
        super().__init__(timeout=15 * 60, custom_id=f"songbot:repaint-modal:{job_id}")
        self.job_id = job_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The guild allowlist applies to modals too."""
        return await guard(interaction)

    async def on_submit(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Parse the part with the text commands' rules, then queue the repaint."""
        args = f"{self.span.value.strip()} {self.caption.value.strip()}".strip()
        try:
            request = parse_repaint(ParsedCommand("repaint", args, ""), self.job_id)
        except UserError as error:
            await refuse(interaction, error.user_message)
            return
        service = service_of(interaction)
        await submit_deferred(interaction, lambda target: service.repaint(user_ref(interaction), request, target))
