"""The acestep backend on the tiny set: batching, seeds, covers, planned codes, errors, progress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.acestep.backend import AceStepGenerator, request_to_track
from engine.protocol import TrackRequest
from storage.contract.errors import GenerationError, UserError
from storage.contract.results import ModelInfo, title_from_caption
from storage.contract.spec import Plan
from tests.helpers import track_request


@pytest.fixture(scope="module")
def generator(tiny_set: Path) -> AceStepGenerator:
    return AceStepGenerator(tiny_set, device="cpu", max_batch=4)


def song(job_id: int, seconds: float, seed: int, **extra: object) -> TrackRequest:
    fields = {"caption": "An upbeat synth-pop anthem", "lyrics": "[Verse]\nneon lights", "instrumental": False}
    fields.update(extra)
    return track_request(job_id, "song", duration_s=seconds, seed=seed, **fields)


def quiet(_job: int | None, _stage: str, _percent: float) -> None:
    """Progress sink for tests that do not look at progress."""


def test_song_shape_title_and_model_info(generator: AceStepGenerator) -> None:
    [track] = generator.generate([song(1, 6, 7, bpm=120, key="A minor")], quiet)
    assert track.audio.shape == (6 * 48_000, 2) and track.audio.dtype == np.float32
    assert np.isfinite(track.audio).all() and np.abs(track.audio).max() <= 1.0
    assert track.title == "Upbeat Synth-pop Anthem" and track.seed == 7
    assert track.metadata.bpm == 120 and track.metadata.duration_s == 6
    assert track.model == ModelInfo(
        backend="acestep",
        dit="acestep-v15-turbo",
        dit_version="turbo",
        vae="vae",
        text_encoder="Qwen3-Embedding-0.6B",
        steps=8,
        shift=3.0,
        sampler="ode",
        dtype="float32",
        device="cpu",
    )


def test_reroll_with_the_same_seed_is_identical_and_another_seed_differs(generator: AceStepGenerator) -> None:
    [first] = generator.generate([song(1, 6, 11)], quiet)
    [again] = generator.generate([song(3, 6, 11)], quiet)
    [other] = generator.generate([song(2, 6, 12)], quiet)
    assert np.array_equal(first.audio, again.audio)
    assert not np.allclose(first.audio, other.audio)


def test_a_track_alone_equals_it_batched_with_a_longer_one(generator: AceStepGenerator) -> None:
    [alone] = generator.generate([song(1, 6, 21)], quiet)
    longer = song(2, 9, 22, caption="a much longer and slower ballad with strings", lyrics="[Chorus]\n" + "oh " * 40)
    batched, _ = generator.generate([song(1, 6, 21), longer], quiet)
    assert np.array_equal(batched.audio, alone.audio)  # exact batches (test_acestep_exact.py has the rest)


def test_cover_follows_source_length_and_is_batch_invariant(generator: AceStepGenerator) -> None:
    t = np.arange(int(5.3 * 48_000)) / 48_000
    source = (0.3 * np.sin(2 * np.pi * 220 * t)[:, None] * np.ones((1, 2))).astype(np.float32)
    cover = track_request(7, "cover", "jazz cover", "", True, 30, 5, source_audio=source, strength=0.5)
    [alone] = generator.generate([cover], quiet)
    batched, _ = generator.generate([cover, song(8, 6, 9)], quiet)
    assert alone.audio.shape == (133 * 1920, 2)  # the source's 5.3 s, rounded up to whole latent frames
    assert np.array_equal(batched.audio, alone.audio)  # exact batches


def test_planned_audio_codes_drive_the_song(generator: AceStepGenerator) -> None:
    codes = [(i * 7919) % 64_000 for i in range(30)]
    plan = Plan(
        caption="planned caption",
        lyrics="[Verse]\nplanned",
        bpm=90,
        key="E minor",
        time_signature=3,
        duration_s=6.0,
        language="en",
        audio_codes=tuple(codes),
    )
    first, plain = generator.generate([song(1, 6, 3, plan=plan), song(2, 6, 3)], quiet)
    again, _ = generator.generate([song(1, 6, 3, plan=plan), song(2, 6, 3)], quiet)
    assert first.caption == "planned caption" and first.lyrics == "[Verse]\nplanned" and first.plan == plan
    assert (first.metadata.key, first.metadata.time_signature, first.metadata.bpm) == ("E minor", 3, 90)
    assert np.array_equal(first.audio, again.audio)
    assert not np.allclose(first.audio, plain.audio)


def test_progress_reports_every_stage_and_step(generator: AceStepGenerator) -> None:
    seen: list[tuple[int | None, str, float]] = []
    generator.generate([song(4, 6, 1), song(5, 6, 2)], lambda j, s, p: seen.append((j, s, p)))
    steps = [p for j, s, p in seen if j == 4 and s == "generating"]
    assert steps == [6.25 * i for i in range(1, 17)]  # exact batches: the two tracks' 8 steps, one after the other
    assert next(s for j, s, _ in seen if j == 5) == "encoding" and seen[-1][1:] == ("decoding", 100.0)


def test_non_finite_latents_fail_the_track_with_a_sentence(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoder = generator.pipeline.dit.decoder
    monkeypatch.setattr(decoder, "forward", lambda x, *a, **k: torch.full_like(x, float("nan")))
    [track] = generator.generate([song(1, 6, 1)], quiet)
    assert track.error is not None and "invalid numbers" in track.error and track.audio.shape == (0, 2)


def test_request_mapping() -> None:
    track = request_to_track(song(1, 6, 2**32 + 5, instrumental=True, language="de"))
    assert (track.lyrics, track.language, track.seed, track.strength) == ("", "de", 5, 1.0)
    with pytest.raises(GenerationError):
        request_to_track(track_request(1, "cover", "x", "", True, 10, 1))


def test_title_from_caption() -> None:
    assert title_from_caption("a dreamy, lo-fi beat for studying late at night") == "Dreamy Lo-fi Beat For"
    assert title_from_caption("  ") == "Untitled"


def test_cover_strength_is_the_share_of_steps_that_follow_the_source() -> None:
    from engine.acestep.sampler import cover_phase_plan

    plan = cover_phase_plan(8, [0.5, 1.0, 0.0, 0.2])
    assert [row[0] for row in plan] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert {row[1] for row in plan} == {0} and {row[2] for row in plan} == {1}
    assert [row[3] for row in plan] == [0, 1, 1, 1, 1, 1, 1, 1]


def test_planning_ahead_then_generating_plans_each_song_once(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert generator.planner is not None
    calls: list[int] = []
    original = generator.planner.plan
    monkeypatch.setattr(generator.planner, "plan", lambda requests: calls.append(len(requests)) or original(requests))
    planned = generator.plan([song(1, 10, 5)], quiet)  # what the worker's planner thread runs
    assert planned[0].plan is not None and len(planned[0].plan.audio_codes) == 50
    [track] = generator.generate(planned, quiet)
    assert calls == [1] and track.plan == planned[0].plan


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 48_000)) / 48_000
    return (0.3 * np.sin(2 * np.pi * 220 * t)[:, None] * np.ones((1, 2))).astype(np.float32)


def test_a_three_second_note_is_covered_at_its_own_length(generator: AceStepGenerator) -> None:
    note = track_request(7, "cover", "jazz", "", False, 3.0, 5, source_audio=tone(3.0))
    [cover] = generator.generate([note], quiet)
    # Generated at upstream's floor of 128 latent frames (5.12 s), then cut back to the note's 75 frames.
    assert cover.error is None and cover.audio.shape == (3 * 48_000, 2) and cover.notice is None


def test_a_source_longer_than_the_longest_song_is_covered_from_its_start_and_says_so(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generator, "planner", None)  # the LM's reading is not what this is about
    long = track_request(8, "cover", "jazz", "", False, 10.0, 5, source_audio=tone(14.0))  # MAX_DURATION_S was 10
    [cover] = generator.generate([long], quiet)
    assert cover.audio.shape == (10 * 48_000, 2)
    assert cover.notice == "The recording is 14 seconds long; this cover is of its first 10 seconds."


def test_a_cover_without_a_reading_keeps_its_vocals(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts: list[str] = []
    original = generator.pipeline.text.lyrics
    monkeypatch.setattr(generator.pipeline.text, "lyrics", lambda texts: prompts.extend(texts) or original(texts))
    monkeypatch.setattr(generator, "planner", None)  # no LM: nothing reads the source
    cover = track_request(9, "cover", "jazz", "", False, 6.0, 5, source_audio=tone(6.0))
    generator.generate([cover], quiet)
    # Upstream's cover passes the (empty) lyrics as they are: "[Instrumental]" would ask for no voice.
    assert prompts and all("# Lyric\n<|endoftext|>" in p for p in prompts)
    [plain] = generator.generate([song(10, 6, 5, instrumental=True)], quiet)
    assert plain.error is None and "# Lyric\n[Instrumental]<|endoftext|>" in prompts[-1]  # a song's "" is none
    # A stored reading that heard no words keeps asking for none, so old covers re-roll exactly.
    read = request_to_track(cover.with_plan(Plan(caption="jazz", lyrics="", duration_s=6.0)))
    assert read.instrumental and not request_to_track(cover).instrumental


def test_a_song_that_cannot_be_planned_fails_alone(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert generator.planner is not None
    original = generator.planner.plan
    too_long = "This description and lyrics are too long for the song planner; please shorten them."

    def plan(requests: list) -> list:
        if any("broken" in r.description for r in requests):
            raise UserError(too_long)
        return original(requests)

    monkeypatch.setattr(generator.planner, "plan", plan)
    batch = [song(1, 10, 5), song(2, 10, 6, caption="a broken request"), song(3, 10, 7)]
    planned = generator.plan(batch, quiet)  # what the worker's planner thread runs
    assert [r.error for r in planned] == [None, too_long, None]
    first, broken, last = generator.generate(planned, quiet)
    assert broken.error == too_long and broken.audio.shape == (0, 2)
    assert first.error is None and last.error is None and first.audio.shape == (10 * 48_000, 2)
    assert first.plan is not None and len(first.plan.audio_codes) == 50
