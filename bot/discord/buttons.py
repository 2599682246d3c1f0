"""What every button under a song shares: a custom id that carries the song id only, and the allowlist.

The buttons are `DynamicItem`s: their custom ids (`songbot:<action>:<song id>`) hold no state, so a
click is handled by whichever client process is running, also after a restart. A subclass names its
action (which gives its template) and its look, and writes its `callback`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

import discord

from bot.discord.replies import guard

ID_PATTERN = r"(?P<job>[0-9]{1,18})"


class SongButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=rf"songbot:song:{ID_PATTERN}"):
    """A button under song `job_id`."""

    action: ClassVar[str] = "song"
    label: ClassVar[str]
    emoji: ClassVar[str]
    style: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary

    def __init_subclass__(cls, *, action: str, **kwargs: Any) -> None:
        super().__init_subclass__(template=rf"songbot:{action}:{ID_PATTERN}", **kwargs)
        cls.action = action

    def __init__(self, job_id: int, label: str | None = None) -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label or self.label, emoji=self.emoji, style=self.style, custom_id=f"songbot:{self.action}:{job_id}"
        )
        super().__init__(button)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(  # type: ignore[override]
        cls, interaction: discord.Interaction, item: discord.ui.Button[Any], match: re.Match[str]
    ) -> Self:
        """Rebuild the button from a click on any message, old or new."""
        return cls(int(match["job"]))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """The guild allowlist applies to buttons too."""
        return await guard(interaction)
