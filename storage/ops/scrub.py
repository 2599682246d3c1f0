"""Secrets blanked out of text that is kept: log lines and the error texts stored in the tables.

The logs (`songbot.logs`) and the queue and outbox (which store error texts) use this one scrubber.
It blanks the bot tokens it is given, and anything shaped like a Telegram bot token, a Discord bot
token, or a Discord interaction or webhook token in a URL, so that a token it was not told about
(a Discord interaction token stored in the outbox, say) does not get through either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

BLANK = "<token>"
SHAPES = (
    # Telegram: <bot id>:<35 characters>, as in https://api.telegram.org/bot<token>/getMe.
    (re.compile(r"(?<![0-9])[0-9]{5,}:[A-Za-z0-9_-]{30,}"), BLANK),
    # Discord bot tokens: three base64url parts joined by dots.
    (re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"), BLANK),
    # Discord interaction and webhook tokens in a URL path.
    (re.compile(r"(/(?:webhooks|interactions)/\d+/)[A-Za-z0-9_.-]{20,}"), rf"\1{BLANK}"),
)


class Scrubber:
    """Blanks secrets out of text.

    Args:
        secrets: Values that must never be kept (the bot tokens); empty ones are ignored.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [secret for secret in secrets if secret]

    def __call__(self, text: str) -> str:
        """`text` with every known secret and every token-shaped string blanked."""
        for secret in self.secrets:
            text = text.replace(secret, BLANK)
        for shape, blank in SHAPES:
            text = shape.sub(blank, text)
        return text
