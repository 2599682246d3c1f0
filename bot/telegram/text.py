"""Outgoing text rules.

Plain text only (no parse mode, so user text cannot inject markup), mentions defused, and Telegram's
length limits respected.
"""

from __future__ import annotations

from telegram.constants import MessageLimit

_WORD_JOINER = "\u2060"  # invisible; keeps "@name" from becoming a mention that pings someone


def defang(text: str) -> str:
    """Stop ``@name`` in echoed text from notifying anyone."""
    return text.replace("@", "@" + _WORD_JOINER)


def chunks(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Split a long text on line breaks into messages Telegram accepts."""
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while line:
            if len(current) + len(line) <= limit:
                current, line = current + line, ""
            elif current:
                parts.append(current)
                current = ""
            else:  # one line longer than a message: cut it
                parts.append(line[:limit])
                line = line[limit:]
    parts.append(current)
    return [part for part in parts if part.strip()]


def caption(text: str, limit: int = MessageLimit.CAPTION_LENGTH) -> str:
    """A caption within Telegram's limit (the end, with the song id and seed, is kept)."""
    if len(text) <= limit:
        return text
    head, _, tail = text.rpartition("\n")
    room = limit - len(tail) - 2
    return f"{head[:room]}…\n{tail}" if room > 0 else text[:limit]
