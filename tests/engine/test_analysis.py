"""The sketch's description by simple analysis: length, a tempo estimate, a key guess by chroma."""

import numpy as np
import pytest

from engine.analysis import describe_audio, estimate_bpm, estimate_key

RATE = 48_000


def clicks(bpm: float, seconds: float = 12.0) -> np.ndarray:
    """A click track: a short decaying 1 kHz burst on every beat."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = t % (60.0 / bpm)
    return (np.sin(2 * np.pi * 1000 * t) * np.exp(-phase * 60)).astype(np.float32)


def chord(*hz: float, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (sum(np.sin(2 * np.pi * f * t) for f in hz) / len(hz)).astype(np.float32)


@pytest.mark.parametrize("bpm", [72, 100, 128, 150])
def test_the_tempo_of_a_click_track_is_found(bpm: int) -> None:
    stereo = np.stack([clicks(bpm)] * 2, axis=1)
    assert abs(describe_audio(stereo, RATE, "sketch").plan.bpm - bpm) <= 2


def test_the_key_of_a_triad_is_found() -> None:
    assert describe_audio(chord(261.63, 329.63, 392.0), RATE, "sketch").plan.key == "C major"
    assert describe_audio(chord(220.0, 261.63, 329.63), RATE, "sketch").plan.key == "A minor"


def test_silence_and_a_clip_shorter_than_a_frame_give_a_guess_not_an_error() -> None:
    silent = describe_audio(np.zeros((RATE, 2), np.float32), RATE, "sketch")
    assert (silent.plan.bpm, silent.plan.key, silent.plan.duration_s) == (120, None, 1.0)
    assert estimate_bpm(np.zeros(10, np.float32), 12_000) == 120
    assert estimate_key(np.zeros(10, np.float32), 12_000) is None


def test_the_description_is_the_recordings_own_length_and_says_who_read_it() -> None:
    description = describe_audio(clicks(100, seconds=7.5), RATE, "analysis")
    assert description.backend == "analysis" and description.plan.duration_s == 7.5
    assert description.plan.lyrics == "" and description.plan.audio_codes == ()
    assert "100 bpm" in (description.plan.caption or "")
