"""The timing pass: our DiT's recorded attention against the official decoder's, and timed songs on the tiny set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from engine.acestep import alignment_pass
from engine.acestep import pipeline as pipeline_module
from engine.acestep.alignment import sung_lines, sung_text
from engine.acestep.alignment_pass import LyricTokens, decoder_of, lyric_attention, lyric_tokens, renoise, timing
from engine.acestep.backend import AceStepGenerator, request_to_track
from engine.acestep.model import load_dit
from engine.protocol import TrackRequest
from storage.contract.spec import Edit
from tests.helpers import DIT_KIT, track_request
from tests.paths import TEST_DATA

GOLDEN = TEST_DATA / "conformance" / "acestep_timing"
LYRICS = "[Verse]\nneon lights over the bay\nwe sing until the day\n\n[Chorus]\noh oh oh\nhold on"


def golden() -> tuple[dict, dict[str, torch.Tensor], Tokenizer]:
    facts = json.loads((GOLDEN / "golden.json").read_text())
    return facts, load_file(str(GOLDEN / "case_pass.safetensors")), Tokenizer.from_file(str(GOLDEN / "tokenizer.json"))


def test_lyric_tokens_are_cut_where_the_handler_cuts_them() -> None:
    facts, _, tokenizer = golden()
    tokens = lyric_tokens(tokenizer, facts["lyrics"], facts["language"])
    assert tokens.ids == facts["lyric_ids"] and tokens.start == facts["lyric_start"]


def test_recorded_attention_equals_the_official_decoder_s() -> None:
    facts, case, tokenizer = golden()
    decoder = load_dit(DIT_KIT, "cpu", torch.float32).decoder
    t = 1.0 / facts["inference_steps"]
    x_t = renoise(case["in.pred_latent"], t)
    assert torch.equal(x_t, case["out.debug.xt"])  # the same seeded noise (42), the same arithmetic
    heads = {int(layer): chosen for layer, chosen in facts["heads"].items()}
    tokens = LyricTokens(facts["lyric_ids"], facts["lyric_start"])
    cross = decoder.cross_kv(case["in.encoder_hidden_states"])
    maps = lyric_attention(decoder, x_t, t, case["in.context_latents"], cross, tokens, list(heads))
    assert set(maps) == set(heads)
    for layer, chosen in heads.items():
        for head in chosen:
            expected = case[f"out.lyric_attention.l{layer}h{head}"]
            torch.testing.assert_close(maps[layer][head], expected, rtol=0, atol=1e-6)
    found = timing(maps, tokens, heads, facts["duration_s"], facts["duration_s"], decoder_of(tokenizer))
    assert found is not None
    expected_lines = [s for s in facts["handler_timestamp"]["sentences"] if sung_text(s["text"])]
    assert [(x.text, x.start_s, x.end_s) for x in found.lines] == [
        (s["text"], s["start"], s["end"]) for s in expected_lines
    ]


@pytest.fixture(scope="module")
def generator(tiny_set: Path) -> AceStepGenerator:
    return AceStepGenerator(tiny_set, device="cpu", max_batch=4)


def song(job_id: int, seed: int, lyrics: str = LYRICS, seconds: float = 8) -> TrackRequest:
    return track_request(job_id, "song", "dreamy synth-pop", lyrics, False, seconds, seed)


def quiet(_job: int | None, _stage: str, _percent: float) -> None:
    """Progress sink for tests that do not look at progress."""


def test_a_song_with_lyrics_has_one_line_per_sung_line_within_the_song(generator: AceStepGenerator) -> None:
    [track] = generator.generate([song(1, 5)], quiet)
    assert track.timing is not None
    lines = track.timing.lines
    assert [line.text for line in lines] == sung_lines(LYRICS)
    starts = [line.start_s for line in lines]
    assert starts == sorted(starts)
    assert all(0 <= line.start_s <= line.end_s <= 8.0 for line in lines)


Maps = dict[int, torch.Tensor]


def recorded(monkeypatch: pytest.MonkeyPatch, bend: bool = False) -> list[Maps]:
    """Record every timing pass's attention; ``bend`` adds a strong diagonal (a model that follows the words)."""
    calls: list[Maps] = []

    def spy(*args: object) -> Maps:
        maps: Maps = alignment_pass.lyric_attention(*args)  # type: ignore[arg-type]
        if bend:
            maps = {layer: m + diagonal(m.shape[1], m.shape[2]) for layer, m in maps.items()}
        calls.append(maps)
        return maps

    monkeypatch.setattr(pipeline_module, "lyric_attention", spy)
    return calls


def diagonal(tokens: int, patches: int) -> torch.Tensor:
    distance = torch.arange(tokens)[:, None] * (patches / tokens) - torch.arange(patches)[None, :]
    return 5.0 * torch.exp(-(distance**2) / 4.0)


def test_a_reroll_with_the_same_seed_gives_the_same_timing(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = recorded(monkeypatch)
    [first] = generator.generate([song(1, 9)], quiet)
    [again] = generator.generate([song(2, 9)], quiet)
    generator.generate([song(3, 10)], quiet)
    assert first.timing is not None and first.timing == again.timing
    same, rerolled, changed = calls
    assert all(torch.equal(same[layer], rerolled[layer]) for layer in same)
    assert not all(torch.equal(same[layer], changed[layer]) for layer in same)  # the pass reads the song


def test_lines_follow_the_attention_through_the_song(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded(monkeypatch, bend=True)
    [track] = generator.generate([song(1, 5, seconds=7.3)], quiet)
    assert track.timing is not None
    starts = [line.start_s for line in track.timing.lines]
    assert len(set(starts)) == len(starts) == len(sung_lines(LYRICS)) and starts == sorted(starts)
    assert starts[-1] > 3.0 and all(line.end_s <= 7.3 for line in track.timing.lines)


def test_batched_songs_are_timed_on_their_own_lyrics(generator: AceStepGenerator) -> None:
    generator.pipeline.exact = False
    try:
        short, long = generator.generate([song(1, 5, "[Verse]\nhold on"), song(2, 6, LYRICS, 9)], quiet)
    finally:
        generator.pipeline.exact = True
    assert short.timing is not None and [line.text for line in short.timing.lines] == ["hold on"]
    assert long.timing is not None and [line.text for line in long.timing.lines] == sung_lines(LYRICS)


def test_lyric_scores_are_the_official_pair(generator: AceStepGenerator) -> None:
    [track] = generator.generate([song(1, 5)], quiet)
    assert track.latents is not None
    made = request_to_track(song(1, 5))
    scores = generator.pipeline.lyric_scores(made, track.latents)
    assert scores is not None and all(0.0 <= score <= 1.0 for score in scores)
    noise, _ = generator.pipeline.lyric_attention(made, track.latents, 1.0)
    late, tokens = generator.pipeline.lyric_attention(made, track.latents)
    assert set(noise) == set(late) == {1, 2, 3} and len(tokens.ids) == late[1].shape[1]
    assert not torch.equal(noise[1], late[1])
    assert generator.pipeline.lyric_scores(request_to_track(song(2, 5, "[Instrumental]")), track.latents) is None


def test_an_instrumental_has_no_timing(generator: AceStepGenerator) -> None:
    [tagged] = generator.generate([song(1, 3, lyrics="[Instrumental]")], quiet)
    [bare] = generator.generate([track_request(2, "song", "ambient pads", "", True, 6, 3)], quiet)
    assert tagged.timing is None and bare.timing is None and tagged.audio.size and bare.audio.size


def test_a_failing_timing_pass_leaves_the_song_without_timing(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("no attention today")

    monkeypatch.setattr(generator.pipeline, "_timing_pass", broken)
    [track] = generator.generate([song(1, 5)], quiet)
    assert track.error is None and track.audio.size and track.timing is None


def same_maps(first: Maps, second: Maps) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[layer], second[layer]) for layer in first)


def test_time_lyrics_of_a_stored_song_equals_its_timing_when_made(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = recorded(monkeypatch)
    [track] = generator.generate([song(1, 13)], quiet)
    assert track.latents is not None
    stored = track_request(9, "song", "dreamy synth-pop", LYRICS, False, 8, 13, base_latents=np.array(track.latents))
    stages: list[tuple[str, float]] = []
    timed = generator.time_lyrics(stored, lambda _job, stage, pct: stages.append((stage, pct)))
    assert timed is not None and timed == track.timing
    made, again = calls
    assert same_maps(made, again)  # the same condition, noise and latents: the same attention, bit for bit
    assert stages == [("timing", 0.0), ("timing", 100.0)]


def test_time_lyrics_without_stored_latents_or_lyrics_is_none(generator: AceStepGenerator) -> None:
    assert generator.time_lyrics(song(1, 5), quiet) is None
    latents = np.zeros((200, 8), dtype=np.float32)
    instrumental = track_request(2, "song", "pads", "", True, 8, 5, base_latents=latents)
    assert generator.time_lyrics(instrumental, quiet) is None


def test_a_stored_repaint_or_cover_is_timed_as_a_song_of_its_own(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored latents are the edited song's own; a cover's source need not come with the request."""
    calls = recorded(monkeypatch)
    [track] = generator.generate([song(1, 13)], quiet)
    latents = np.array(track.latents)
    repaint = track_request(
        3, "repaint", "dreamy synth-pop", LYRICS, False, 8, 13, base_latents=latents,
        edit=Edit(task="repaint", song_id=1, start_s=2.0, end_s=4.0),
    )  # fmt: skip
    cover = track_request(4, "cover", "dreamy synth-pop", LYRICS, False, 8, 13, base_latents=latents)
    assert generator.time_lyrics(repaint, quiet) == track.timing
    assert generator.time_lyrics(cover, quiet) == track.timing
    made, repainted, covered = calls
    assert same_maps(made, repainted) and same_maps(made, covered)
