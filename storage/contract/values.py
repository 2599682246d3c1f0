"""The value sets both sides of the queue agree on: what a song may ask for, and the audio format.

The bot validates requests against these, the job spec (`storage/contract/spec.py`) enforces them, and the
engine reads the same numbers. This module imports nothing of ours, so anything may import it.
"""

from __future__ import annotations

import re

# Languages the ACE-Step text encoder and the 5 Hz LM know (upstream `acestep/constants.py`).
LANGUAGES = frozenset(
    (
        "ar",
        "az",
        "bg",
        "bn",
        "ca",
        "cs",
        "da",
        "de",
        "el",
        "en",
        "es",
        "fa",
        "fi",
        "fr",
        "he",
        "hi",
        "hr",
        "ht",
        "hu",
        "id",
        "is",
        "it",
        "ja",
        "ko",
        "la",
        "lt",
        "ms",
        "ne",
        "nl",
        "no",
        "pa",
        "pl",
        "pt",
        "ro",
        "ru",
        "sa",
        "sk",
        "sr",
        "sv",
        "sw",
        "ta",
        "te",
        "th",
        "tl",
        "tr",
        "uk",
        "ur",
        "vi",
        "yue",
        "zh",
    )
)
# Keys in the one spelling a job spec stores: a note, an optional `#` or `b`, then `major` or `minor`.
NOTES = "ABCDEFG"
ACCIDENTALS = ("", "#", "b")
MODES = ("major", "minor")
KEYS = frozenset(f"{note}{accidental} {mode}" for note in NOTES for accidental in ACCIDENTALS for mode in MODES)
_KEY = re.compile(r"^\s*([A-Ga-g])\s*([#b]?)\s*[-_ ]?\s*(major|minor|maj|min|m|)\s*$")


def canonical_key(text: str) -> str | None:
    """`c#m`, `Bb major`, `F♯ min`, `G` → `C# minor`, `Bb major`, `F# minor`, `G major`; None if not a key."""
    match = _KEY.match(text.replace("♯", "#").replace("♭", "b"))
    if not match:
        return None
    mode = "minor" if match.group(3).lower() in ("minor", "min", "m") else "major"
    return f"{match.group(1).upper()}{match.group(2)} {mode}"


# Beats per bar: 2/4, 3/4, 4/4 and 6/8.
TIME_SIGNATURES = frozenset({2, 3, 4, 6})

BPM_MIN, BPM_MAX = 30, 300
# Songs shorter than this are refused; the model itself makes up to MAX_DURATION_S.
MIN_DURATION_S = 10
MAX_DURATION_S = 600
# Covers: the shortest recording. A voice note of a few seconds can be covered: the engine generates
# upstream's floor of about 5 s (128 latent frames) and cuts the cover back to its source's length.
MIN_SOURCE_S = 3
SEED_MAX = 2**32 - 1
# `takes=N`: at most this many songs from one command, each with its own seed.
TAKES_MAX = 4
# best=N: N takes are made and scored, the best one is posted.
BEST_OF_MIN = 2
BEST_OF_MAX = 4
# Song ids are the jobs table's INTEGER key: 32 bits on PostgreSQL, so a larger id names no song.
ID_MAX = 2**31 - 1

# Covers: the share of the sampling steps that follow the source when the user gives no strength.
# Upstream's `audio_cover_strength` default: every step follows the source (1.0 keeps its structure; ~0.2
# transfers a style).
DEFAULT_COVER_STRENGTH = 1.0

# Every stored and generated track is 48 kHz stereo.
SAMPLE_RATE = 48_000
