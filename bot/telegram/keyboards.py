"""Inline keyboards. Buttons carry ids, never state, so they keep working after a restart."""

from __future__ import annotations

from collections.abc import Iterable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.core.parser import DIGITS
from storage.contract.values import ID_MAX

REROLL, LYRICS, REPAINT, EXTEND = "rr", "ly", "rp", "ex"
LIKE_THIS = "lk"  # "Make one like this" under a /describe
ACTIONS = (REROLL, LYRICS, REPAINT, EXTEND, LIKE_THIS)
CALLBACK_PATTERN = rf"^({REROLL}|{LYRICS}|{REPAINT}|{EXTEND}|{LIKE_THIS}):"  # the rest is checked by parse_callback


def result_keyboard(job_id: int) -> InlineKeyboardMarkup:
    """The buttons under a finished song: a new take, the lyrics, repaint a part (asks which), extend it."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("🎲 Re-roll", callback_data=f"{REROLL}:{job_id}"),
                InlineKeyboardButton("📝 Lyrics", callback_data=f"{LYRICS}:{job_id}"),
            ],
            [
                InlineKeyboardButton("✏️ Repaint", callback_data=f"{REPAINT}:{job_id}"),
                InlineKeyboardButton("➕ Extend", callback_data=f"{EXTEND}:{job_id}"),
            ],
        ]
    )


def history_keyboard(items: Iterable[tuple[int, str]]) -> InlineKeyboardMarkup | None:
    """One re-roll button per past song, given as (song id, title) pairs."""
    rows = [
        [InlineKeyboardButton(f"🎲 #{job_id} {title[:24]}", callback_data=f"{REROLL}:{job_id}")]
        for job_id, title in items
    ]
    return InlineKeyboardMarkup(rows) if rows else None


def parse_callback(data: str | None) -> tuple[str, int] | None:
    """Split ``rr:12`` into ("rr", 12); None for anything else."""
    action, _, job = (data or "").partition(":")
    # ASCII digits within the id range only: `str.isdigit` also admits `²`, which `int` refuses.
    if action not in ACTIONS or not DIGITS.fullmatch(job) or int(job) > ID_MAX:
        return None
    return action, int(job)
