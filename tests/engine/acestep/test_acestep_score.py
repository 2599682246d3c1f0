"""The acestep backend scores takes with its own LM the official way (the tiny set's LM is the kit's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.acestep.backend import AceStepGenerator, request_to_track
from engine.protocol import GeneratedTrack
from storage.contract.spec import Plan
from tests.helpers import track_request
from tests.paths import TEST_DATA

GOLDEN = json.loads((TEST_DATA / "conformance" / "acestep_scoring" / "golden.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def generator(tiny_set: Path) -> AceStepGenerator:
    return AceStepGenerator(tiny_set, device="cpu", max_batch=2)


def quiet(_job: int | None, _stage: str, _percent: float) -> None:
    """Progress sink."""


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda case: case["name"])
def test_a_take_with_the_kits_plan_scores_the_golden_value(generator: AceStepGenerator, case: dict) -> None:
    meta = case["metadata"]
    plan = Plan(
        caption=case["caption"],
        lyrics=case["lyrics"],
        bpm=meta["bpm"],
        key=meta["keyscale"],
        time_signature=int(meta["timesignature"]),
        duration_s=float(meta["duration"]),
        language=meta.get("language"),
        audio_codes=tuple(case["audio_codes"]),
    )
    request = track_request(1, "song", case["caption"], case["lyrics"], seed=3, best_of=3)
    silent = np.zeros((48_000, 2), np.float32)
    track = GeneratedTrack(1, silent, 3, "t", case["caption"], case["lyrics"], plan=plan)
    score = generator.score(request, track, quiet)
    assert score.total == case["total"] and score.conditions == case["scores"]
    assert score.best_of == 3 and not score.chosen and score.lyric_alignment is None


def test_a_made_song_and_a_made_cover_are_scored_on_their_own_codes(generator: AceStepGenerator) -> None:
    song = track_request(
        1, "song", "An upbeat synth-pop anthem", "[Verse]\nneon lights", duration_s=10, seed=5, best_of=2
    )
    [made] = generator.generate([song], quiet)
    assert made.plan is not None and made.plan.audio_codes
    stages: list[tuple[str, float]] = []
    first = generator.score(song, made, lambda _job, stage, pct: stages.append((stage, pct)))
    assert stages == [("scoring", 0.0), ("scoring", 100.0)]
    assert first == generator.score(song, made, quiet)  # a take's score is its own, every time
    assert {"caption", "lyrics", "bpm"} <= set(first.conditions) and 0.0 <= first.total <= 1.0
    # Beside the LM's score, upstream's lyric score of the DiT's attention (its dit_score), kept out of the total.
    assert first.lyric_alignment is not None and np.isfinite(first.lyric_alignment)
    _, dit_score = generator.pipeline.lyric_scores(request_to_track(song.with_plan(made.plan)), made.latents)
    assert first.lyric_alignment == dit_score
    source = np.random.default_rng(0).uniform(-0.3, 0.3, (6 * 48_000, 2)).astype(np.float32)
    cover = track_request(2, "cover", "jazz trio", duration_s=6, seed=5, source_audio=source, best_of=2)
    [covered] = generator.generate([cover], quiet)
    scored = generator.score(cover, covered, quiet)  # no plan codes: its own audio, read back
    assert "caption" in scored.conditions and 0.0 <= scored.total <= 1.0
