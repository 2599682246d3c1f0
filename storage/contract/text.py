"""Text from users, cleaned before it is stored: no NUL, no other control or format characters.

PostgreSQL refuses a NUL in a text column, terminals and chat clients act on control characters,
and a lone surrogate (which a JSON update may carry) cannot be encoded as UTF-8. Format characters
(category Cf: bidi overrides and isolates such as U+202E and U+2066, the BOM, zero-width spaces and
joiners) are invisible and reorder or hide what is echoed back, so they go too; the one kept is a
zero-width joiner between two emoji, where it only glues a sequence (👩‍💻) into one picture. Multi-line text
(lyrics) keeps its newlines and tabs, with Windows and old Mac line ends made plain newlines; a
one-line text (a description, a style, a file name) turns them into spaces.
"""

from __future__ import annotations

import unicodedata
from typing import Any

# Unicode categories that are never kept: controls (C0, DEL, C1), format characters and surrogates.
DROPPED = frozenset({"Cc", "Cf", "Cs"})
KEPT_IN_LINES = frozenset("\n\t")
ZWJ = "\u200d"
EMOJI_CATEGORIES = frozenset({"So", "Sk"})  # pictographs, and the skin-tone modifiers
EMOJI_PRESENTATION = "\ufe0f"  # the variation selector that often ends an emoji before a joiner


def clean_lines(text: str) -> str:
    """Multi-line text without control or format characters; newlines and tabs stay."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(char for index, char in enumerate(text) if _kept(text, index, char))


def _kept(text: str, index: int, char: str) -> bool:
    if char in KEPT_IN_LINES or unicodedata.category(char) not in DROPPED:
        return True
    return char == ZWJ and 0 < index < len(text) - 1 and _emoji(text[index - 1]) and _emoji(text[index + 1])


def _emoji(char: str) -> bool:
    return char == EMOJI_PRESENTATION or unicodedata.category(char) in EMOJI_CATEGORIES


def clean_line(text: str) -> str:
    """One line of text without control or format characters: line breaks and tabs become spaces, ends trimmed."""
    return clean_lines(text).replace("\n", " ").replace("\t", " ").strip()


def without_nul(value: Any) -> Any:
    """A statement parameter with every NUL removed from its strings (the database layer's last guard)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {key: without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    if isinstance(value, tuple):
        return tuple(without_nul(item) for item in value)
    return value


def counted(amount: float, unit: str) -> str:
    """`1, "second"` → `1 second`, `2.5, "second"` → `2.5 seconds`: the unit in the number's form."""
    return f"{amount:g} {unit}{'' if amount == 1 else 's'}"
