"""The LM's reading as a Plan, whatever it wrote: the official LM's real outputs, and junk."""

from __future__ import annotations

import json

import pytest

from engine.acestep.lm.plan import parse_metadata
from engine.acestep.lm.reading import CAPTION_MAX_CHARS, described, reading_plan
from storage.contract.spec import JobSpec, Plan
from storage.contract.values import KEYS, LANGUAGES
from tests.helpers import TEST_DATA

LOG = TEST_DATA / "acestep_understand_log.jsonl"


def _records() -> list[dict]:
    return [json.loads(line) for line in LOG.read_text(encoding="utf-8").splitlines() if "raw" in line]


@pytest.mark.parametrize("record", [r for r in _records() if "raw" in r], ids=lambda r: str(r["index"]))
def test_every_real_reading_becomes_a_description_a_song_accepts(record: dict) -> None:
    seconds = len(record["audio_codes"]) / 5
    plan = described(reading_plan(parse_metadata(record["raw"]), "", seconds))
    assert plan.duration_s == seconds  # the recording's own length, not the LM's guess
    assert plan.key in KEYS and (plan.language is None or plan.language in LANGUAGES)
    # The fields build a song spec: no key or language the spec refuses reaches it.
    JobSpec.build(caption=plan.caption or "", duration_s=30, **JobSpec.meta_fields(plan))


def test_the_last_records_that_break_a_naive_reader_get_values_not_errors() -> None:
    """The log's last two readings: a Unicode key and the language `unknown` (a spec refuses both as
    written), and a duration that disagrees with the code count; and the 10x guess of record 45."""
    by_index = {r["index"]: r for r in _records()}
    short = by_index[48]  # 12.6 s of codes, `B♭ major`, the language `unknown`
    plan = described(reading_plan(parse_metadata(short["raw"]), "", len(short["audio_codes"]) / 5))
    assert (plan.key, plan.language, plan.duration_s, plan.bpm) == ("Bb major", None, 12.6, 97)
    with pytest.raises(Exception, match="key"):  # what a naive app does with the LM's own spelling
        JobSpec(caption="x", duration_s=12.6, key=short["parsed"]["keyscale"])
    last = by_index[49]  # the LM's 122 s against 607 codes (121.4 s): a check of 5 codes a second would fail
    plan = described(reading_plan(parse_metadata(last["raw"]), "", len(last["audio_codes"]) / 5))
    assert last["parsed"]["duration"] * 5 != len(last["audio_codes"]) and plan.duration_s == 121.4
    JobSpec.build(caption=plan.caption or "", duration_s=plan.duration_s, **JobSpec.meta_fields(plan))
    guessed = by_index[45]  # the LM guessed 215 s for 20.6 s of audio
    plan = described(reading_plan(parse_metadata(guessed["raw"]), "", len(guessed["audio_codes"]) / 5))
    assert guessed["parsed"]["duration"] == 215 and plan.duration_s == 20.6


def test_junk_is_dropped_or_clamped_never_raised() -> None:
    meta = {
        "bpm": "fast",
        "caption": "a " * 2000,
        "duration": "forever",
        "keyscale": "H# dorian",
        "language": "klingon",
        "timesignature": "7/8",
        "genres": 12,
    }
    plan = described(reading_plan(meta, "  [Instrumental] ", 9.0))
    assert plan == Plan(caption=plan.caption, lyrics="", duration_s=9.0)
    assert plan.caption is not None and len(plan.caption) <= CAPTION_MAX_CHARS
    out_of_range = described(reading_plan({"bpm": 7, "timesignature": 5, "keyscale": "c#m"}, "la", 3.0))
    assert (out_of_range.bpm, out_of_range.time_signature, out_of_range.key) == (None, None, "C# minor")


def test_broken_characters_of_a_confused_lm_are_dropped() -> None:
    plan = described(Plan(caption="fa\ufffd andonica", lyrics="K aud\ufffdin", duration_s=6.0))
    assert (plan.caption, plan.lyrics) == ("fa andonica", "K audin")
