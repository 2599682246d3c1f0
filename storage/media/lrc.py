"""Timed lyrics as text: the LRC format that music players read beside an MP3, and its `[mm:ss.xx]` stamps.

An LRC file is plain UTF-8, one line per sung line, each after the time it starts:

    [ti:Morning Train]
    [length:03:05]
    [00:12.40]the morning train is running late

The ID3 frames of the same timing (USLT, SYLT) are written with the rest of the tag in `audio.py`.
"""

from __future__ import annotations

import re

from storage.contract.results import LyricTiming

# A header value must not close its bracket or start a new line.
_HEADER_UNSAFE = re.compile(r"[\[\]\r\n]+")


def stamp(seconds: float) -> str:
    """`72.345` → `[01:12.35]`: minutes, seconds and hundredths, as LRC writes a time."""
    hundredths = max(0, round(seconds * 100))
    minutes, rest = divmod(hundredths, 6000)
    return f"[{minutes:02d}:{rest // 100:02d}.{rest % 100:02d}]"


def timed_lines(timing: LyricTiming) -> list[str]:
    """Each sung line after its start stamp, in order."""
    return [f"{stamp(line.start_s)}{_one_line(line.text)}" for line in timing.lines]


def lrc_text(timing: LyricTiming, title: str, duration_s: float) -> str:
    """The whole LRC file: the `[ti:]` and `[length:]` headers players expect, then the timed lines."""
    total = max(0, round(duration_s))
    headers = [f"[ti:{_one_line(_HEADER_UNSAFE.sub(' ', title))}]", f"[length:{total // 60:02d}:{total % 60:02d}]"]
    return "\n".join([*headers, *timed_lines(timing)]) + "\n"


def sylt_entries(timing: LyricTiming) -> list[tuple[str, int]]:
    """The lines as ID3 SYLT wants them: (text, start in milliseconds)."""
    return [(_one_line(line.text), max(0, round(line.start_s * 1000))) for line in timing.lines]


def _one_line(text: str) -> str:
    """A line's text on one line (a stray newline would start an untimed line in the file)."""
    return " ".join(text.split())
