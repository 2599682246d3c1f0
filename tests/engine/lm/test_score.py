"""The take score (engine/acestep/lm/score.py) against upstream's test_time_scaling.py on the tiny LM."""

from __future__ import annotations

import hashlib
import json

import pytest

from engine.acestep.lm.model import load_lm
from engine.acestep.lm.plan import codes_to_string
from engine.acestep.lm.score import Scorer, combine, field_target, plan_metadata, pmi_to_normalized
from storage.contract.spec import Plan
from tests.paths import TEST_DATA

KIT = TEST_DATA / "conformance" / "acestep_scoring"
GOLDEN = json.loads((KIT / "golden.json").read_text(encoding="utf-8"))
CHECKPOINT = json.loads((KIT / "checkpoint.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def scorer(tiny_lm_dir):
    folder = tiny_lm_dir / CHECKPOINT["folder"]
    for name, digest in CHECKPOINT["sha256"].items():
        # The goldens were made on this exact checkpoint: a changed tiny LM needs new goldens, not a looser test.
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    return Scorer(load_lm(folder))


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda case: case["name"])
def test_prompts_are_upstreams(scorer, case):
    prompts = scorer.lm.prompts
    assert prompts.understand(codes_to_string(case["audio_codes"])) == case["prompt_conditional"]
    assert prompts.understand("NO USER INPUT") == case["prompt_unconditional"]


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda case: case["name"])
def test_score_equals_upstreams(scorer, case):
    scored = scorer.score(case["audio_codes"], case["lyrics"], case["metadata"])
    assert scored.conditions == case["scores"]
    assert list(scored.conditions) == list(case["scores"])  # upstream's order: the sums run in it
    assert scored.total == case["total"]


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda case: case["name"])
def test_recall_rank_weighting_equals_upstreams(scorer, case):
    prompt = scorer.lm.prompts.understand(codes_to_string(case["audio_codes"]))
    got = {
        key: scorer.recall(prompt, field_target(key, case["metadata"][key]), topk=1000)
        for key in case["recall_topk_1000"]
    }
    assert got == case["recall_topk_1000"]


def test_the_kit_pins_a_recall_that_is_not_zero():
    assert any(value > 0 for case in GOLDEN["cases"] for value in case["recall_topk_1000"].values())


def test_combine_weighs_caption_lyrics_and_the_metadata_mean():
    scores = {"bpm": 1.0, "keyscale": 0.0, "caption": 0.8, "lyrics": 0.4}
    assert combine(scores) == pytest.approx(0.5 * 0.8 + 0.3 * 0.4 + 0.2 * 0.5)
    # No lyrics: caption and metadata share the weight 5:2.
    assert combine({"bpm": 1.0, "caption": 0.3}) == pytest.approx((0.5 * 0.3 + 0.2 * 1.0) / 0.7)
    assert combine({}) == 0.0


def test_pmi_is_squashed_around_one_half():
    assert pmi_to_normalized(0.0) == 0.5
    assert pmi_to_normalized(1.0) > 0.5 > pmi_to_normalized(-1.0)


def test_plan_metadata_reads_like_the_lms_cot():
    plan = Plan(caption="dreamy", bpm=120, key="C major", time_signature=4, duration_s=30.0, language="en")
    assert plan_metadata(plan, "ignored") == {
        "bpm": 120,
        "duration": 30,
        "keyscale": "C major",
        "language": "en",
        "timesignature": "4",
        "caption": "dreamy",
    }
    assert plan_metadata(Plan(), "the request's caption") == {"caption": "the request's caption"}
