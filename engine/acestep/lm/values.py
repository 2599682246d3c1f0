"""The value sets of the 5 Hz LM's metadata (upstream ``acestep/constants.py``); no torch needed."""

from __future__ import annotations

KEYSCALES = tuple(
    f"{note}{acc} {mode}" for note in "ABCDEFG" for acc in ("", "#", "b", "♭", "♯") for mode in ("major", "minor")
)
# fmt: off
LANGUAGES = (
    "ar", "az", "bg", "bn", "ca", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fr", "he", "hi", "hr",
    "ht", "hu", "id", "is", "it", "ja", "ko", "la", "lt", "ms", "ne", "nl", "no", "pa", "pl", "pt", "ro",
    "ru", "sa", "sk", "sr", "sv", "sw", "ta", "te", "th", "tl", "tr", "uk", "ur", "vi", "yue", "zh", "unknown",
)
# fmt: on
TIME_SIGNATURES = (2, 3, 4, 6)
BPM_RANGE = (30, 300)
DURATION_MIN = 10
FIELD_ORDER = ("bpm", "caption", "duration", "genres", "keyscale", "language", "timesignature")
