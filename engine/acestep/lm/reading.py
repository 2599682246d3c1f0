"""The LM's reading of a recording (understand mode) as a `Plan`, whatever the LM wrote.

A trained LM writes what `tests/data/acestep_understand_log.jsonl` shows: keys in Unicode (`B♭ major`),
the language `unknown`, a duration that is a guess (up to ten times off). A random or a confused one
writes anything its constraints let through. A reading must never fail on that: a field whose value is
not of its type is dropped (the model's choice, later), and the duration is always the recording's own.
`described` then holds a reading to the values a song accepts, for `/describe`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from storage.contract.spec import Plan
from storage.contract.values import BPM_MAX, BPM_MIN, LANGUAGES, TIME_SIGNATURES, canonical_key

# The reading's free text, capped: a runaway caption or lyrics would not fit a message or a song.
CAPTION_MAX_CHARS = 1024
LYRICS_MAX_CHARS = 8000
REPLACEMENT = "\ufffd"


def reading_plan(meta: dict[str, Any], lyrics: str, duration_s: float) -> Plan:
    """The reading as a `Plan`: each field the LM wrote that fits its type, the lyrics, the given length.

    Args:
        meta: The parsed metadata (`plan.parse_metadata`): LM names and values as written.
        lyrics: The free text after the metadata.
        duration_s: The recording's own length (the LM's `duration` is a guess and is ignored).
    """
    fields: dict[str, Any] = {}
    for name, value in meta.items():
        if name == "duration":
            continue
        try:
            Plan.model_validate({name: value})
        except ValidationError:
            continue
        fields[name] = value
    return Plan.model_validate({**fields, "lyrics": lyrics, "duration_s": duration_s})


def described(plan: Plan) -> Plan:
    """A reading held to what a song accepts: the spec's key spelling, values in range, text capped; no codes.

    A value outside the model's sets (a bpm of 7, the language `unknown`, a key it cannot spell)
    becomes None rather than an error.
    """
    bpm = plan.bpm if plan.bpm is not None and BPM_MIN <= plan.bpm <= BPM_MAX else None
    language = (plan.language or "").strip().lower()
    # A token that ends inside a character decodes to U+FFFD; a confused LM writes many.
    lyrics = (plan.lyrics or "").replace(REPLACEMENT, "").strip()
    caption = (plan.caption or "").replace(REPLACEMENT, "")
    return Plan(
        caption=" ".join(caption.split())[:CAPTION_MAX_CHARS],
        lyrics="" if lyrics.lower() in ("", "[instrumental]") else lyrics[:LYRICS_MAX_CHARS],
        bpm=bpm,
        key=canonical_key(plan.key) if plan.key else None,
        time_signature=plan.time_signature if plan.time_signature in TIME_SIGNATURES else None,
        language=language if language in LANGUAGES else None,
        duration_s=plan.duration_s,
    )
