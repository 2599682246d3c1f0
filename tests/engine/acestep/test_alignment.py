"""Our aligner and lyric score against the official MusicStampsAligner / MusicLyricScorer outputs.

The golden data (tests/data/conformance/acestep_timing/, README there) hold three attention
stacks: the official decoder's lyric attention on the tiny conformance DiT (t = 1/8 and t = 1),
and a synthetic stack with a diagonal trend. Only the chosen heads are stored; every other head
is NaN here, so reading one would show in every output.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from engine.acestep import alignment
from engine.acestep.alignment import (
    align,
    consensus,
    dtw,
    heads_for,
    select_heads,
    sentences,
    sung_lines,
    sung_text,
    token_texts,
    token_times,
)
from engine.acestep.alignment_score import energy, lyric_score, tag_mask
from tests.paths import TEST_DATA

GOLDEN = TEST_DATA / "conformance" / "acestep_timing"
CASES = ("out.dit", "out.lm", "out.maths")
ATTENTION = {"out.dit": "out.lyric_attention", "out.lm": "out.lyric_attention_lm", "out.maths": "in.maths_attention"}


@cache
def facts() -> dict[str, Any]:
    return json.loads((GOLDEN / "golden.json").read_text())  # type: ignore[no-any-return]


@cache
def tensors() -> dict[str, torch.Tensor]:
    return {**load_file(str(GOLDEN / "case_pass.safetensors")), **load_file(str(GOLDEN / "case_maths.safetensors"))}


def heads() -> dict[int, list[int]]:
    return {int(layer): chosen for layer, chosen in facts()["heads"].items()}


def attention(case: str) -> dict[int, torch.Tensor]:
    """{layer: [4 heads, tokens, patches]}: the stored heads, NaN for the heads never read."""
    stored = {k: v for k, v in tensors().items() if k.startswith(ATTENTION[case] + ".l")}
    shape = next(iter(stored.values())).shape
    maps = {layer: torch.full((4, *shape), float("nan")) for layer in range(4)}
    for name, value in stored.items():
        layer, head = name.rsplit(".l", 1)[1].split("h")
        maps[int(layer)][int(head)] = value
    return maps


def ids(case: str) -> list[int]:
    return facts()["maths_ids" if case == "out.maths" else "lyric_ids"]  # type: ignore[no-any-return]


def duration_s(case: str) -> float:
    return facts()["maths_duration_s" if case == "out.maths" else "duration_s"]  # type: ignore[no-any-return]


@cache
def decode_fn() -> alignment.Decode:
    tokenizer = Tokenizer.from_file(str(GOLDEN / "tokenizer.json"))
    return lambda token_ids: tokenizer.decode(token_ids, skip_special_tokens=False)


def stack(case: str) -> torch.Tensor:
    chosen = select_heads(attention(case), heads())
    assert chosen is not None
    return chosen


@pytest.mark.parametrize("case", CASES)
def test_consensus_matrix_equals_the_official(case: str) -> None:
    calc = consensus(stack(case))
    expected = tensors()[f"{case}.calc_matrix"].numpy()
    assert calc.dtype == np.float32 and calc.shape == expected.shape
    np.testing.assert_allclose(calc, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_dtw_path_equals_the_official(case: str) -> None:
    rows, cols = dtw(-tensors()[f"{case}.calc_matrix"].numpy().astype(np.float64))
    assert np.array_equal(rows, tensors()[f"{case}.path_rows"].numpy())
    assert np.array_equal(cols, tensors()[f"{case}.path_cols"].numpy())


@pytest.mark.parametrize("case", CASES)
def test_token_times_and_sentences_equal_the_official(case: str) -> None:
    tokens, found = align(stack(case), ids(case), duration_s(case), decode_fn())
    expected = facts()[case]["token_timestamps"]
    assert [(t.token_id, t.text) for t in tokens] == [(e["token_id"], e["text"]) for e in expected]
    np.testing.assert_allclose([t.start_s for t in tokens], [e["start"] for e in expected], rtol=0, atol=1e-9)
    np.testing.assert_allclose([t.end_s for t in tokens], [e["end"] for e in expected], rtol=0, atol=1e-9)
    assert [(s.text, s.start_s, s.end_s) for s in found] == [
        (e["text"], e["start"], e["end"]) for e in facts()[case]["sentences"]
    ]


def test_the_synthetic_case_moves_forward_through_the_song() -> None:
    """The diagonal case is not degenerate: its sentences start at distinct, increasing times."""
    _, found = align(stack("out.maths"), ids("out.maths"), duration_s("out.maths"), decode_fn())
    starts = [s.start_s for s in found]
    assert len(set(starts)) == len(starts) > 3 and starts == sorted(starts)


def test_the_handler_timestamps_are_the_aligner_s_on_the_recorded_attention() -> None:
    """What get_lyric_timestamp returned equals our aligner on the attention its decoder recorded."""
    _, found = align(stack("out.dit"), ids("out.dit"), duration_s("out.dit"), decode_fn())
    handler = facts()["handler_timestamp"]["sentences"]
    assert [(s.text, s.start_s, s.end_s) for s in found] == [(e["text"], e["start"], e["end"]) for e in handler]


@pytest.mark.parametrize("case", CASES)
def test_lyric_score_equals_the_official(case: str) -> None:
    pieces = [decode_fn()([token]) for token in ids(case)]
    assert tag_mask(pieces).tolist() == facts()[case]["type_mask"]
    matrix = energy(stack(case))
    np.testing.assert_allclose(matrix, tensors()[f"{case}.score_energy"].numpy(), rtol=0, atol=1e-6)
    rows, cols = dtw(-(matrix**2).astype(np.float32))
    assert np.array_equal(np.stack([rows, cols], axis=1), tensors()[f"{case}.score_path"].numpy())
    assert lyric_score(attention(case), pieces, heads()) == facts()[case]["score"]


def test_handler_scores_are_the_lm_and_dit_attention_scores() -> None:
    pieces = [decode_fn()([token]) for token in ids("out.dit")]
    handler = facts()["handler_score"]
    assert lyric_score(attention("out.dit"), pieces, heads()) == handler["dit_score"]
    assert lyric_score(attention("out.lm"), pieces, heads()) == handler["lm_score"]


def test_lyric_score_without_any_chosen_head_is_zero() -> None:
    assert lyric_score({0: torch.rand(4, 3, 5)}, ["a", "b", "c"], {7: [0]}) == 0.0


def test_dtw_path_is_monotone_and_covers_every_token() -> None:
    cost = np.random.default_rng(3).normal(size=(17, 29))
    rows, cols = dtw(cost)
    assert (rows[0], cols[0], rows[-1], cols[-1]) == (0, 0, 16, 28)
    steps = np.stack([np.diff(rows), np.diff(cols)], axis=1)
    assert {tuple(step) for step in steps} <= {(1, 1), (1, 0), (0, 1)}


def test_medians_a_head_at_a_time_equal_the_whole_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long songs exceed torch.quantile's input limit; per-head medians give the same matrix."""
    whole = consensus(stack("out.maths"))
    monkeypatch.setattr(alignment, "_QUANTILE_LIMIT", 100)
    assert np.array_equal(consensus(stack("out.maths")), whole)


def test_a_token_that_completes_a_split_character_adds_nothing() -> None:
    """'é' is two byte tokens: the first decodes to U+FFFD, the second adds "" (as upstream's does)."""
    texts = token_texts(ids("out.dit"), decode_fn())
    split = texts.index("\ufffd")
    assert texts[split + 1] == "" and len(texts) == len(ids("out.dit"))


def test_token_times_are_path_patches_in_seconds() -> None:
    calc = np.array([[1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]], dtype=np.float32)
    times = token_times(calc, [1, 2], 4.0, lambda token_ids: "x" * len(token_ids))
    assert [(t.start_s, t.end_s) for t in times] == [(0.0, 1.0), (2.0, 3.0)]


def test_sentences_split_at_newline_tokens_and_drop_blank_ones() -> None:
    texts = {1: "hi", 2: "\n", 3: "\n", 4: "yo"}
    times = [alignment.TokenTime(i, texts[i], float(i), float(i) + 0.5) for i in (1, 2, 3, 4)]
    found = sentences(times, lambda token_ids: "".join(texts[i] for i in token_ids))
    assert [(s.text, s.start_s, s.end_s) for s in found] == [("hi", 1.0, 2.5), ("yo", 4.0, 4.5)]


def test_sung_lines_drop_section_tags_and_blank_lines() -> None:
    lyrics = "[Verse 1]\nla la\n\n[Chorus - loud] sing it\n  [Outro]  \n(ooh)"
    assert sung_lines(lyrics) == ["la la", "sing it", "(ooh)"]
    assert sung_text("[Bridge]") == ""


def test_heads_for_the_official_geometry_and_the_tiny_one() -> None:
    assert heads_for(24, 16) == {2: [6], 3: [10, 11], 4: [3], 5: [8, 9], 6: [8]}
    assert heads_for(32, 32) == heads_for(24, 16)
    assert heads_for(4, 4) == heads()
