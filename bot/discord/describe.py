"""`/describe` on Discord: the description as messages within Discord's length limit, and its button.

`describe_message` is the renderer the Discord messenger posts (`DiscordMessenger.send_description`);
the 🎵 "Make one like this" button is a `DynamicItem` whose custom id carries only the description's id
(`songbot:likethis:<id>`), so a click works in any process, also after a restart, and queues the song
for whoever presses it (their limits apply).
"""

from __future__ import annotations

import discord

from bot.core.describe import LIKE_THIS_LABEL, Described, describe_text
from bot.discord.buttons import SongButton
from bot.discord.replies import escape, service_of, submit_deferred, user_ref

# Room under Discord's 2,000 characters for the requester's mention on a channel post.
PART_LIMIT = 1900


class LikeThisButton(SongButton, action="likethis"):
    """🎵 Make one like this: a song with exactly the fields the description shows."""

    label = LIKE_THIS_LABEL.removeprefix("🎵 ")
    emoji = "🎵"
    style = discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        """Queue the song; it is the presser's."""
        service = service_of(interaction)
        await submit_deferred(interaction, lambda target: service.make_like(user_ref(interaction), self.job_id, target))


def describe_message(described: Described) -> tuple[list[str], discord.ui.View]:
    """The description (escaped) in parts Discord accepts, long lyrics over several; the button's view.

    The view goes under the last part.
    """
    view = discord.ui.View(timeout=None)
    view.add_item(LikeThisButton(described.job_id))
    view.stop()  # the client's DynamicItem template handles its clicks
    return parts(escape(describe_text(described))), view


def parts(text: str, limit: int = PART_LIMIT) -> list[str]:
    """`text` split on line breaks into pieces of at most `limit` characters (a longer line is cut)."""
    pieces = [line[start : start + limit] for line in text.splitlines() for start in range(0, len(line) or 1, limit)]
    out: list[str] = []
    for piece in pieces:
        if out and len(out[-1]) + 1 + len(piece) <= limit:
            out[-1] += "\n" + piece
        else:
            out.append(piece)
    return [part for part in out if part.strip()]
