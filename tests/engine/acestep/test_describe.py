"""`/describe` on the tiny acestep set: VAE encode, FSQ codes, the LM's reading; no DiT, no VAE decode.

The tiny LM has random weights, so its reading is junk: these tests show that junk comes back as a
description whose fields are in range (or left out), never as a crash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.acestep.backend import AceStepGenerator
from engine.acestep.describe import readable_s
from engine.protocol import TrackRequest
from storage.contract.errors import GenerationError
from storage.contract.values import BPM_MAX, BPM_MIN, KEYS, LANGUAGES, TIME_SIGNATURES
from tests.helpers import track_request

RATE = 48_000


@pytest.fixture(scope="module")
def generator(tiny_set: Path) -> AceStepGenerator:
    return AceStepGenerator(tiny_set, device="cpu", max_batch=4)


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)[:, None] * np.ones((1, 2))).astype(np.float32)


def request(source: np.ndarray | None, seed: int = 5) -> TrackRequest:
    seconds = len(source) / RATE if source is not None else 1.0
    return track_request(3, "describe", duration_s=seconds, seed=seed, source_audio=source)


def quiet(_job: int | None, _stage: str, _percent: float) -> None:
    """Progress sink."""


def test_a_reading_has_its_fields_in_range_and_the_recordings_own_length(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dit(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("describe must not run the DiT or the VAE decoder")

    monkeypatch.setattr(generator.pipeline, "generate", no_dit)
    monkeypatch.setattr(generator.pipeline.vae, "decode", no_dit)
    stages: list[tuple[str, float]] = []
    description = generator.describe(request(tone(6.0)), lambda _job, stage, pct: stages.append((stage, pct)))
    plan = description.plan
    assert description.backend == "acestep" and description.cut_s is None
    assert plan.duration_s == 6.0 and plan.audio_codes == ()
    assert plan.bpm is None or BPM_MIN <= plan.bpm <= BPM_MAX
    assert plan.key is None or plan.key in KEYS
    assert plan.time_signature is None or plan.time_signature in TIME_SIGNATURES
    assert plan.language is None or plan.language in LANGUAGES
    assert isinstance(plan.caption, str) and isinstance(plan.lyrics, str)
    assert stages[0] == ("listening", 0.0) and stages[-1] == ("listening", 100.0)


def test_the_same_seed_reads_the_same(generator: AceStepGenerator) -> None:
    first = generator.describe(request(tone(4.0), seed=9), quiet)
    again = generator.describe(request(tone(4.0), seed=9), quiet)
    assert first == again


def test_a_recording_longer_than_the_lm_can_read_is_read_from_its_start_and_says_so(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    planner = generator.planner
    budget = planner._budget()
    # A context that holds 8 s of codes (5 tokens a second) beside what the LM writes about them.
    smaller = budget - round((readable_s(planner) - 8) * 5)
    monkeypatch.setattr(planner, "_budget", lambda: smaller)
    assert readable_s(planner) == 8.0
    description = generator.describe(request(tone(15.0)), quiet)
    assert description.cut_s == 8.0 and description.plan.duration_s == 15.0


def test_a_planner_without_room_for_any_code_says_so(
    generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generator.planner, "_budget", lambda: 100)
    with pytest.raises(GenerationError, match="no room to read a recording"):
        generator.describe(request(tone(4.0)), quiet)


def test_without_a_source_there_is_a_sentence(generator: AceStepGenerator) -> None:
    with pytest.raises(GenerationError, match="no recording to describe"):
        generator.describe(request(None), quiet)


def test_without_an_lm_the_description_is_a_guess_that_says_so(generator: AceStepGenerator) -> None:
    from engine.acestep.describe import describe

    description = describe(generator.pipeline, None, request(tone(5.0)), quiet)
    assert description.backend == "analysis" and description.plan.duration_s == 5.0
    assert (description.plan.key or "").startswith("A ")  # a 220 Hz tone: a key on A
