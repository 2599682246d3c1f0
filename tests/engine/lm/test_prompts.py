import hashlib
import json

import pytest

from engine.acestep.lm.prompts import ChatTemplate, Prompts
from engine.acestep.lm.tokenizer import encode


@pytest.fixture(scope="module")
def prompts(facts_dir):
    return Prompts(ChatTemplate.from_dir(facts_dir / "configs" / "acestep-5Hz-lm-1.7B"))


def _records(facts_dir):
    return json.loads((facts_dir / "lm_prompts.json").read_text(encoding="utf-8"))["records"]


def _render(prompts: Prompts, rec: dict) -> str:
    i = rec["inputs"]
    rid = rec["id"]
    if rid.startswith("t2m_cot"):
        return prompts.cot(i["caption"], i["lyrics"], negative=i.get("negative_prompt"))
    if rid.startswith("t2m_codes"):
        return prompts.codes(i["caption"], i["lyrics"], i["cot_text"], negative=i.get("negative_prompt"))
    if rid == "sample_unconditional_unused":
        return prompts.sample(i["query"], False, negative=i["negative_prompt"])
    if rid.startswith("sample"):
        return prompts.sample(i["query"], i["instrumental"])
    if rid.startswith("format"):
        return prompts.format(i["caption"], i["lyrics"])
    if rid.startswith("understand"):
        return prompts.understand(i["audio_codes"])
    raise AssertionError(rid)


def test_every_golden_prompt_matches_byte_and_token_for_token(facts_dir, prompts, official_tokenizer):
    records = _records(facts_dir)
    assert len(records) == 16
    for rec in records:
        text = _render(prompts, rec)
        assert text == rec["rendered"], rec["id"]
        assert hashlib.sha256(text.encode()).hexdigest() == rec["rendered_sha256"]
        assert encode(official_tokenizer, text) == rec["token_ids"], rec["id"]


def test_cot_goldens_feed_the_codes_prompt(facts_dir, prompts):
    from engine.acestep.lm.plan import format_cot

    for rec in _records(facts_dir):
        meta = rec["inputs"].get("parsed_metadata")
        if meta is not None:
            assert format_cot(meta) == rec["inputs"]["cot_text"]


def test_understand_accepts_code_lists(prompts):
    assert prompts.understand([0, 63999]) == prompts.understand("<|audio_code_0|><|audio_code_63999|>")


def test_official_tokenizer_facts(official_tokenizer):
    tok = official_tokenizer
    assert tok.get_vocab_size() == 217_204
    assert tok.token_to_id("<|audio_code_0|>") == 151_669
    assert tok.token_to_id("<|audio_code_63999|>") == 215_668
    assert tok.token_to_id("<|im_end|>") == 151_645
    assert tok.token_to_id("<think>") == 151_667
    assert tok.token_to_id("</think>") == 151_668
