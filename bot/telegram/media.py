"""Finding the audio a ``/cover`` points at.

The replied-to message holds it, or the message itself when ``/cover`` is the caption of an upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from telegram import Message

NO_SOURCE = "Reply to an audio file, voice note or video note with /cover to make a cover of it."


@dataclass(frozen=True)
class Source:
    """A file on Telegram's side, described well enough to judge it before downloading."""

    file_id: str
    size_bytes: int | None
    mime: str | None
    filename: str | None
    duration_s: float | None = None


def find_source(message: Message) -> Source | None:
    """The attachment a cover should use: the message's own first, then the one it replies to."""
    for candidate in (message, message.reply_to_message):
        if candidate is not None and (source := _attachment(candidate)) is not None:
            return source
    return None


def _attachment(message: Message) -> Source | None:
    if message.audio:
        a = message.audio
        return Source(a.file_id, a.file_size, a.mime_type, a.file_name, _seconds(a.duration))
    if message.voice:
        v = message.voice
        return Source(v.file_id, v.file_size, v.mime_type or "audio/ogg", "voice.ogg", _seconds(v.duration))
    if message.video_note:
        # A round video message; its sound track is what we cover.
        n = message.video_note
        return Source(n.file_id, n.file_size, "video/mp4", "video_note.mp4", _seconds(n.duration))
    if message.document:
        d = message.document
        return Source(d.file_id, d.file_size, d.mime_type, d.file_name)
    return None


def _seconds(value: object) -> float | None:
    """Telegram's declared duration (an int, or a timedelta with PTB_TIMEDELTA) in seconds."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) if isinstance(value, int | float) else None
