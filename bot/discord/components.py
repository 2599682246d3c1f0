"""Persistent buttons and the lyrics modal.

The buttons are `DynamicItem`s: their custom ids carry the song id (`songbot:reroll:<id>`), not state,
so a click is handled by whichever client process is running, also after a restart. Re-roll choice:
the new job belongs to whoever pressed the button, so it counts against the presser's quota; a re-roll
counts against the requester's quota only when the requester pressed it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import discord

from bot.core.parser import CoverRequest, SongRequest
from bot.discord.buttons import SongButton
from bot.discord.edits import ExtendButton, RepaintButton
from bot.discord.lyrics import show_lyrics
from bot.discord.replies import guard, service_of, submit_deferred, user_ref
from storage.contract.types import TrackView

# Discord allows 5 buttons per row and 5 rows per message.
HISTORY_BUTTONS = 5


class RerollButton(SongButton, action="reroll"):
    """🎲 Re-roll: the same request with a new seed."""

    label = "Re-roll"
    emoji = "🎲"
    style = discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Queue a sibling of the song; the new job is the presser's."""
        service = service_of(interaction)
        await submit_deferred(
            interaction, lambda target: service.reroll(user_ref(interaction), self.job_id, None, target)
        )


class LyricsButton(SongButton, action="lyrics"):
    """📝 Lyrics: the song's lyrics, privately."""

    label = "Lyrics"
    emoji = "📝"

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Show the timed lyrics and the .lrc to the person who asked."""
        await show_lyrics(interaction, self.job_id)


def finished_view(view: discord.ui.View) -> discord.ui.View:
    """Mark a view finished so that discord.py does not keep it in memory.

    The DynamicItem templates registered on the client dispatch its clicks, in this process and the next.
    """
    view.stop()
    return view


def result_view(job_id: int) -> discord.ui.View:
    """The buttons under every result: re-roll, lyrics, repaint a part, extend."""
    view = discord.ui.View(timeout=None)
    view.add_item(RerollButton(job_id))
    view.add_item(LyricsButton(job_id))
    view.add_item(RepaintButton(job_id))
    view.add_item(ExtendButton(job_id))
    return finished_view(view)


def history_view(tracks: list[TrackView]) -> discord.ui.View:
    """One re-roll button per recent song (as many as fit one row)."""
    view = discord.ui.View(timeout=None)
    for track in tracks[:HISTORY_BUTTONS]:
        view.add_item(RerollButton(track.job_id, label=f"#{track.job_id}"))
    return finished_view(view)


class CoverLyricsModal(discord.ui.Modal, title="✍️ New lyrics for the cover"):
    """Multi-line new lyrics for /cover; the cover's attachment waits in `submit` while they are written."""

    lyrics: discord.ui.TextInput[CoverLyricsModal] = discord.ui.TextInput(
        label="Lyrics", style=discord.TextStyle.paragraph, placeholder="[verse]\n…", max_length=4000
    )

    def __init__(
        self,
        request: CoverRequest,
        max_chars: int,
        submit: Callable[[discord.Interaction, CoverRequest], Awaitable[None]],
    ) -> None:
        super().__init__(timeout=15 * 60)
        self.request, self.submit = request, submit
        self.lyrics.max_length = min(max_chars, 4000)
        self.lyrics.default = request.lyrics[: self.lyrics.max_length] or None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The guild allowlist applies to modals too."""
        return await guard(interaction)

    async def on_submit(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Submit the cover with the written lyrics."""
        await self.submit(interaction, dataclasses.replace(self.request, lyrics=self.lyrics.value))


class LyricsModal(discord.ui.Modal, title="✍️ Write lyrics"):
    """Multi-line lyrics for /song (slash options are single-line)."""

    lyrics: discord.ui.TextInput[LyricsModal] = discord.ui.TextInput(
        label="Lyrics", style=discord.TextStyle.paragraph, placeholder="[verse]\n…", max_length=4000
    )

    def __init__(self, request: SongRequest, max_chars: int) -> None:
        super().__init__(timeout=15 * 60)
        self.request = request
        self.lyrics.max_length = min(max_chars, 4000)
        self.lyrics.default = request.lyrics[: self.lyrics.max_length] or None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The guild allowlist applies to modals too."""
        return await guard(interaction)

    async def on_submit(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Submit the song with the written lyrics."""
        request = dataclasses.replace(self.request, lyrics=self.lyrics.value, instrumental=False)
        service = service_of(interaction)
        await submit_deferred(interaction, lambda target: service.submit_song(user_ref(interaction), request, target))
