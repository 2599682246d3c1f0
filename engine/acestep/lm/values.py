"""The value sets of the 5 Hz LM's metadata (upstream ``acestep/constants.py``); no torch needed.

They are the storage's sets (``storage/contract/values.py``, what a job spec may ask for) in the LM's order,
plus what the LM itself may write beyond them: the ``♭``/``♯`` spellings of a key and ``unknown``.
"""

from __future__ import annotations

from storage.contract.values import ACCIDENTALS, BPM_MAX, BPM_MIN, MIN_DURATION_S, MODES, NOTES
from storage.contract.values import LANGUAGES as SPEC_LANGUAGES
from storage.contract.values import TIME_SIGNATURES as SPEC_TIME_SIGNATURES

KEYSCALES = tuple(
    f"{note}{accidental} {mode}" for note in NOTES for accidental in (*ACCIDENTALS, "♭", "♯") for mode in MODES
)
LANGUAGES = (*sorted(SPEC_LANGUAGES), "unknown")
TIME_SIGNATURES = tuple(sorted(SPEC_TIME_SIGNATURES))
BPM_RANGE = (BPM_MIN, BPM_MAX)
DURATION_MIN = MIN_DURATION_S
FIELD_ORDER = ("bpm", "caption", "duration", "genres", "keyscale", "language", "timesignature")
