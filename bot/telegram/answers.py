"""Answers on Telegram: the text in as many messages as it needs, then its file as a document.

Used by the handlers (/lyrics and 📝 answered at once) and by the adapter's `send_answer` (the delivery
loop's answer to a job that makes no track, such as a song's lyrics timed on request).
"""

from __future__ import annotations

from telegram import Bot, ReplyParameters

from bot.core.answers import Answer
from bot.telegram.text import caption, chunks, defang


async def post_answer(
    bot: Bot, chat_id: int, answer: Answer, reply_to: int | None = None, thread_id: int | None = None
) -> None:
    """Post `answer` in the chat, replying to `reply_to` where that message still exists."""
    reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
    for part in chunks(defang(answer.text)):
        await bot.send_message(chat_id, part, reply_parameters=reply, message_thread_id=thread_id)
    file = answer.attachment
    if file is None:
        return
    title = answer.song.title if answer.song is not None else file.filename
    await bot.send_document(
        chat_id,
        document=file.data,
        filename=file.filename,
        caption=caption(defang(f"📝 {title}: timed lyrics for music players")),
        reply_parameters=reply,
        message_thread_id=thread_id,
    )
