"""`/describe` on Telegram: the description as messages (within Telegram's length limit) and its button.

`describe_message` is the renderer the delivery loop's Telegram messenger posts (`TelegramAdapter.
send_description`); the "Make one like this" button carries only the description's id (`lk:<id>`),
which `Handlers.button` turns into a song for whoever presses it.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.core.describe import LIKE_THIS_LABEL, Described, describe_text
from bot.telegram.keyboards import LIKE_THIS
from bot.telegram.text import chunks, defang

NO_RECORDING = (
    "Reply to an audio file, voice note or video note with /describe, or send one with /describe as its caption."
)


def describe_message(described: Described) -> tuple[list[str], InlineKeyboardMarkup]:
    """The description split into messages Telegram accepts (long lyrics run over several), and its button.

    The button goes under the last message, after the lyrics it would sing.
    """
    button = InlineKeyboardButton(LIKE_THIS_LABEL, callback_data=f"{LIKE_THIS}:{described.job_id}")
    return chunks(defang(describe_text(described))), InlineKeyboardMarkup([[button]])
