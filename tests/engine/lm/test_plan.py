import json

import pytest

from engine.acestep.lm.plan import codes_to_string, format_cot, parse_codes, parse_metadata, split_output
from tests.helpers import FACTS, TEST_DATA

LOG = TEST_DATA / "acestep_understand_log.jsonl"
PROMPTS = FACTS / "lm_prompts.json"


def _log_records() -> list[dict]:
    return [json.loads(line) for line in LOG.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_log_has_fifty_real_outputs_and_the_lost_tail():
    records = _log_records()
    assert len([r for r in records if "raw" in r]) == 50
    assert len(records) == 51


@pytest.mark.parametrize("record", _log_records(), ids=lambda r: str(r["index"]))
def test_parser_reads_every_real_output(record):
    raw = record.get("raw", record.get("raw_tail_only"))
    if "raw_tail_only" in record:
        # The log lost this record's beginning: the first lines continue a caption
        # whose key is gone, so only the complete fields can be checked.
        raw = "\n".join(line for line in raw.splitlines() if not line.startswith(" "))
    assert parse_metadata(raw) == record["parsed"]
    assert parse_metadata(f"<think>\n{raw}\n</think>\n\nlyrics") == record["parsed"]


def test_format_cot_matches_official_yaml_goldens():
    goldens = json.loads(PROMPTS.read_text(encoding="utf-8"))["format_metadata_as_cot_goldens"]
    assert len(goldens) == 6
    for golden in goldens:
        assert format_cot(golden["metadata"]) == golden["cot_text"]


def test_cot_round_trips_through_the_parser():
    meta = {
        "bpm": 118,
        "caption": ("A long caption " * 12).strip(),
        "duration": 30,
        "keyscale": "F# minor",
        "language": "no",
        "timesignature": 4,
    }
    parsed = parse_metadata(format_cot(meta))
    assert parsed == meta


def test_split_output_and_codes():
    meta, lyrics = split_output("<think>\nbpm: 90\nlanguage: en\n</think>\n\n[Verse]\nla la\n")
    assert meta == {"bpm": 90, "language": "en"}
    assert lyrics == "[Verse]\nla la"
    assert parse_codes(codes_to_string([0, 63999, 42])) == [0, 63999, 42]
    assert parse_metadata("bpm: 90\n<|audio_code_1|>") == {"bpm": 90}
    assert parse_metadata("caption: 'Yes: it''s quoted'\ntimesignature: 4/4") == {
        "caption": "Yes: it's quoted",
        "timesignature": 4,
    }


def test_a_plan_is_written_back_to_the_lm_under_its_own_names():
    from engine.acestep.lm.plan import format_cot, lm_fields
    from engine.acestep.lm.planner import COT_FIELDS
    from storage.contract.spec import Plan

    plan = Plan(caption="c", bpm=90, key="E minor", time_signature=3, duration_s=47.0, language="en")
    fields = lm_fields(plan, COT_FIELDS)
    assert fields == {
        "bpm": 90,
        "caption": "c",
        "duration": 47.0,
        "keyscale": "E minor",
        "language": "en",
        "timesignature": 3,
    }
    # A plan holds seconds as a float; the LM reads and writes whole seconds.
    assert "duration: 47\n" in format_cot(fields)
