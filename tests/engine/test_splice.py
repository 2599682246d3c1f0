"""Splicing a regenerated part into a song: the base keeps its samples up to the crossfades."""

import numpy as np
import pytest

from engine.sketch import SketchGenerator
from engine.splice import CROSSFADE_S, splice
from storage.contract.spec import Edit
from tests.helpers import track_request

RATE = 48_000


def noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (round(seconds * RATE), 2)).astype(np.float32)


def test_repaint_keeps_the_base_outside_the_part_and_crossfades_within_a_quarter_second() -> None:
    base, new = noise(20, 1), noise(20, 2)
    out = splice(base, new, 8.0, 12.0)
    fade = round(CROSSFADE_S * RATE)
    assert CROSSFADE_S <= 0.5 and out.shape == base.shape
    np.testing.assert_array_equal(out[: 8 * RATE - fade], base[: 8 * RATE - fade])
    np.testing.assert_array_equal(out[8 * RATE : 12 * RATE], new[8 * RATE : 12 * RATE])
    np.testing.assert_array_equal(out[12 * RATE + fade :], base[12 * RATE + fade :])
    edge = out[8 * RATE - fade : 8 * RATE]
    assert np.all(np.minimum(base[8 * RATE - fade : 8 * RATE], new[8 * RATE - fade : 8 * RATE]) - 1e-6 <= edge)


def test_extend_keeps_the_base_up_to_the_seam() -> None:
    base, new = noise(20, 1), noise(30, 2)
    out = splice(base, new, 20.0, 30.0)
    fade = round(CROSSFADE_S * RATE)
    assert out.shape == new.shape
    np.testing.assert_array_equal(out[: 20 * RATE - fade], base[: 20 * RATE - fade])
    np.testing.assert_array_equal(out[20 * RATE :], new[20 * RATE :])


@pytest.mark.parametrize(("task", "end_s", "length_s"), [("repaint", 12.0, 20.0), ("extend", 30.0, 30.0)])
def test_the_sketch_backend_keeps_the_base_song(task: str, end_s: float, length_s: float) -> None:
    base = SketchGenerator()._one(track_request(1, "song", "rain", "", False, 20.0, 5), lambda *_: None).audio
    start_s = 8.0 if task == "repaint" else 20.0
    edit = Edit(task=task, song_id=1, start_s=start_s, end_s=end_s)
    request = track_request(2, task, "rain", "", False, length_s, 6, edit=edit, base_audio=base)
    out = SketchGenerator()._one(request, lambda *_: None).audio
    kept = round((start_s - CROSSFADE_S) * RATE)
    assert out.shape[0] == round(length_s * RATE)
    np.testing.assert_array_equal(out[:kept], base[:kept])
    if task == "repaint":
        part = slice(round(start_s * RATE), round(end_s * RATE))
        assert not np.allclose(out[part], base[part], atol=1e-3)
        np.testing.assert_array_equal(
            out[round((end_s + CROSSFADE_S) * RATE) :], base[round((end_s + CROSSFADE_S) * RATE) :]
        )


def test_the_sketch_backend_colours_a_song_like_a_clip() -> None:
    plain = SketchGenerator()._one(track_request(1, "song", "rain", "", False, 10.0, 5), lambda *_: None).audio
    t = np.arange(12 * RATE) / RATE
    bright = np.stack([np.sign(np.sin(2 * np.pi * 3000 * t))] * 2, axis=1).astype(np.float32) * 0.3
    liked = (
        SketchGenerator()
        ._one(track_request(1, "song", "rain", "", False, 10.0, 5, reference_audio=bright), lambda *_: None)
        .audio
    )
    assert liked.shape == plain.shape and not np.allclose(liked, plain, atol=1e-3)
    assert np.abs(liked).max() <= 1.0
