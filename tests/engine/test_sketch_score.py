"""The sketch's stand-in score: deterministic, per take, and higher where the audio keeps the bpm asked for."""

from dataclasses import replace

from engine.protocol import TrackRequest
from engine.sketch import SketchGenerator, sketch_score
from storage.contract.results import TrackMeta
from storage.contract.spec import JobSpec


def take(seed, bpm=120, duration_s=20.0):
    generator = SketchGenerator()
    request = TrackRequest(1, "song", JobSpec(caption="rain", duration_s=duration_s, bpm=bpm, best_of=3), seed)
    return generator, request, generator.generate([request], lambda *_: None)[0]


def test_the_score_is_the_same_for_the_same_take_and_differs_between_takes():
    generator, request, track = take(4)
    first = generator.score(request, track, lambda *_: None)
    assert first == generator.score(request, take(4)[2], lambda *_: None)
    assert first.best_of == 3 and set(first.conditions) == {"bpm", "duration"}
    assert abs(first.total - (first.conditions["bpm"] + first.conditions["duration"]) / 2) <= 1e-6
    totals = {generator.score(request, take(seed)[2], lambda *_: None).total for seed in range(4)}
    assert len(totals) > 1  # takes differ, so best=N has something to choose


def test_the_audio_matches_its_own_bpm_and_length_best():
    _, _, track = take(2, bpm=120)
    own = sketch_score(track, 2)
    assert own.conditions["duration"] == 1.0
    elsewhere = sketch_score(replace(track, metadata=TrackMeta(bpm=97, duration_s=40.0)), 2)
    assert elsewhere.conditions["bpm"] < own.conditions["bpm"]
    assert elsewhere.conditions["duration"] == 0.5
