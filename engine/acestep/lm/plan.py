"""Reading and writing the LM's song blueprint (the metadata inside ``<think>``).

The LM writes YAML-like text, not YAML: ``genres:Afrobeats`` has no space after the
colon and long captions are folded over indented lines. The reader is therefore a
tolerant line parser. The writer, which feeds the metadata back to the LM for the
audio-code phase, must match the official ``yaml.dump`` output byte for byte
(80-column folding, quoting), so it does use PyYAML.

What the planner makes of it is a ``storage.contract.spec.Plan``, the one definition of a plan; its fields
carry the contract's names (``key``, ``time_signature``, ``duration_s``), and ``lm_fields`` turns them
back into the LM's own (``keyscale``, ``timesignature``, ``duration``) for its prompts.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from storage.contract.spec import Plan

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
CODE_RE = re.compile(r"<\|audio_code_(\d+)\|>")
INT_FIELDS = ("bpm", "duration", "timesignature")
COT_FIELDS = ("bpm", "caption", "duration", "keyscale", "language", "timesignature")


def metadata_block(text: str) -> str:
    """Return the metadata text the LM wrote: inside ``<think>`` or before the first code."""
    text = text.split("<|im_end|>", 1)[0]
    if THINK_OPEN in text:
        text = text.split(THINK_OPEN, 1)[1]
        return text.split(THINK_CLOSE, 1)[0]
    if THINK_CLOSE in text:
        return text.split(THINK_CLOSE, 1)[0]
    return text.split("<|audio_code_", 1)[0]


def _unquote(value: str) -> str:
    """Undo YAML scalar quoting, which the CoT writer uses for values like ``'no'``."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _coerce(key: str, value: str) -> Any:
    value = _unquote(value.strip())
    if key in INT_FIELDS:
        # '4/4' style time signatures keep only the numerator, as the CoT does.
        head = value.split("/", 1)[0].strip() if key == "timesignature" else value
        try:
            return int(head)
        except ValueError:
            return value
    return value


def parse_metadata(text: str) -> dict[str, Any]:
    """Parse the LM's metadata block into a dict.

    A line that starts without whitespace and holds a ``:`` starts a field; an
    indented line continues the previous one (folded captions). Continuations are
    joined with single spaces. bpm, duration and timesignature become ints when
    they are numbers.

    Args:
        text: The LM output (with or without the ``<think>`` tags).

    Returns:
        The fields found, in the order written.
    """
    fields: dict[str, list[str]] = {}
    current: str | None = None
    # Only "\n" ends a line: str.splitlines() would also split on \x0b, \x1c, \x85 and friends.
    for line in metadata_block(text).replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        if line[0] not in " \t" and ":" in line:
            key, value = line.split(":", 1)
            current = key.strip()
            fields[current] = [value.strip()]
        elif current is not None:
            fields[current].append(line.strip())
    return {key: _coerce(key, " ".join(p for p in parts if p)) for key, parts in fields.items()}


def split_output(text: str) -> tuple[dict[str, Any], str]:
    """Split a create-sample/understand output into (metadata, the free text after ``</think>``)."""
    meta = parse_metadata(text)
    rest = text.split(THINK_CLOSE, 1)[1] if THINK_CLOSE in text else ""
    rest = rest.split("<|im_end|>", 1)[0]
    return meta, rest.strip()


def format_cot(metadata: dict[str, Any]) -> str:
    """Serialise metadata as the CoT the audio-code phase is prompted with.

    Matches the official re-serialisation: only the six CoT fields that are set,
    ``4/4`` becomes ``4``, digit strings and whole-number floats become ints, then ``yaml.dump`` with sorted
    keys and Unicode kept, wrapped in the think tags on their own lines.
    """
    items: dict[str, Any] = {}
    for key in COT_FIELDS:
        value = metadata.get(key)
        if value is None:
            continue
        if key == "timesignature" and isinstance(value, str) and value.endswith("/4"):
            value = value.split("/", 1)[0]
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a `Plan` holds seconds as a float; the LM writes and reads `duration: 120`
        items[key] = value
    body = yaml.dump(items, allow_unicode=True, sort_keys=True).strip() if items else ""
    return f"{THINK_OPEN}\n{body}\n{THINK_CLOSE}"


def lm_fields(plan: Plan, names: tuple[str, ...]) -> dict[str, Any]:
    """The plan's values under the LM's own field names (those of ``names``), for a CoT it is prompted with."""
    values = {
        "bpm": plan.bpm,
        "caption": plan.caption,
        "duration": plan.duration_s,
        "keyscale": plan.key,
        "language": plan.language,
        "timesignature": plan.time_signature,
    }
    return {name: values[name] for name in names}


def codes_to_string(codes: list[int]) -> str:
    """Render audio codes as the LM's token string."""
    return "".join(f"<|audio_code_{c}|>" for c in codes)


def parse_codes(text: str) -> list[int]:
    """Read every ``<|audio_code_N|>`` in ``text``, in order."""
    return [int(m) for m in CODE_RE.findall(text)]
