"""/lyrics and the 📝 button on Discord: the timed lines and the .lrc file, privately.

The answer is ephemeral: the handler defers privately, asks the core, and edits that deferred response
with the text and the file. A song stored without its timing is timed on request: the deferred response
says so, and the delivery loop later replaces it with the answer (`DiscordMessenger.send_answer`), through
the same interaction token.
"""

from __future__ import annotations

import io
import logging

import discord

from bot.core.answers import Answer
from bot.discord.replies import clip, delivery_target, escape, refuse, service_of, user_ref
from storage.contract.errors import GENERIC_FAILURE, UserError

log = logging.getLogger("songbot.discord")


async def show_lyrics(interaction: discord.Interaction, song_id: int) -> None:
    """Answer /lyrics <id> or 📝 privately with the song's timed lines and its .lrc (or one sentence)."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        answer = await service_of(interaction).lyrics_for(user_ref(interaction), song_id, delivery_target(interaction))
    except UserError as error:
        await refuse(interaction, error.user_message)
        return
    except Exception:
        log.exception("lyrics failed", extra={"interaction": interaction.id})
        await refuse(interaction, GENERIC_FAILURE)
        return
    await interaction.edit_original_response(content=clip(escape(answer.text)), attachments=answer_files(answer))


def answer_files(answer: Answer) -> list[discord.File]:
    """The answer's file as a Discord attachment (none when it has none)."""
    file = answer.attachment
    return [] if file is None else [discord.File(io.BytesIO(file.data), filename=file.filename)]
