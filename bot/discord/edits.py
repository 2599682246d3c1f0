"""Work on a posted song from Discord: the ✏️ Repaint button (a modal asks for the part) and ➕ Extend.

Like the other buttons they are `DynamicItem`s whose custom ids carry the song id only, so they work
on any result, also after a restart. The service checks that the song is the presser's.
"""

from __future__ import annotations

import discord

from bot.core.parser import ExtendRequest, ParsedCommand, parse_repaint
from bot.discord.buttons import SongButton
from bot.discord.replies import guard, refuse, service_of, submit_deferred, user_ref
from storage.contract.errors import UserError


class RepaintButton(SongButton, action="repaint"):
    """✏️ Repaint: asks which part (and an optional caption) in a modal, then repaints it."""

    label = "Repaint"
    emoji = "✏️"

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Ask for the part to repaint."""
        await interaction.response.send_modal(RepaintModal(self.job_id))


class ExtendButton(SongButton, action="extend"):
    """➕ Extend: continue the song by half a minute (less near the longest a song may be)."""

    label = "Extend"
    emoji = "➕"

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
