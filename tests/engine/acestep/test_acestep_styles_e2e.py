"""House styles end to end through `python -m songbot chat` with the real ACE-Step engine on the tiny set (CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.acestep.checkpoints import DIT_DIR, TEXT_ENCODER_DIR, VAE_DIR
from storage.styles import ADAPTER_CONFIG, ADAPTER_WEIGHTS, LORAS_DIR
from tests.engine.acestep.test_acestep_console_e2e import RESULT, chat


def own_model_dir(tmp_path: Path, tiny_set: Path) -> Path:
    """The tiny set's models (linked) with a loras folder of this test's own, which it changes."""
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    for name in (DIT_DIR, VAE_DIR, TEXT_ENCODER_DIR):
        (model_dir / name).symlink_to(tiny_set / name)
    shutil.copytree(tiny_set / LORAS_DIR, model_dir / LORAS_DIR)
    return model_dir


def results(out: str) -> dict[int, tuple[int, np.ndarray]]:
    """Song id → (seed, samples) of every result the chat printed."""
    found = {}
    for song_id, seed, path in RESULT.findall(out):
        samples, _ = sf.read(path, dtype="float32", always_2d=True)
        found[int(song_id)] = (int(seed), samples)
    return found


def test_styles_list_apply_reroll_and_fail_cleanly(tmp_path: Path, tiny_set: Path) -> None:
    model_dir = own_model_dir(tmp_path, tiny_set)
    out = chat(
        tmp_path,
        model_dir,
        "/styles\n"
        "/song lo-fi rain at night duration=10 seed=5 instrumental=true style=demo\n"
        "/song lo-fi rain at night duration=10 seed=5 instrumental=true\n"
        "/song lo-fi rain at night duration=10 seed=5 instrumental=true style=demo style_scale=0\n"
        "/song lo-fi rain at night duration=10 style=nope\n",
    )
    assert "• demo" in out and "style=<name>" in out  # /styles
    assert "There is no style called 'nope'; the styles here are demo (see /styles)." in out
    made = results(out)
    assert len(made) == 3, out
    (styled_id, (_, styled)), (_, (_, plain)), (_, (_, zero)) = sorted(made.items())
    assert not np.array_equal(styled, plain)  # style=demo changes the song
    assert np.array_equal(plain, zero)  # scale 0 is no style (the same MP3 samples)

    # A re-roll with the seed repeats the styled song exactly.
    again = results(chat(tmp_path, model_dir, f"/reroll {styled_id} 5\n"))
    assert len(again) == 1 and np.array_equal(next(iter(again.values()))[1], styled)

    # The adapter changes, another is damaged: each job gets its sentence, and the engine goes on.
    config_path = model_dir / LORAS_DIR / "demo" / ADAPTER_CONFIG
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "lora_alpha": 2}))
    shutil.copytree(model_dir / LORAS_DIR / "demo", model_dir / LORAS_DIR / "broken")
    (model_dir / LORAS_DIR / "broken" / ADAPTER_WEIGHTS).write_bytes(b"not a safetensors file")
    out = chat(
        tmp_path,
        model_dir,
        f"/reroll {styled_id} 5\n"
        "/song a choir in a cave duration=10 style=broken\n"
        "/song a choir in a cave duration=10\n",
    )
    assert "The style 'demo' has changed since this song was made, so a re-roll cannot repeat it" in out
    assert "The style 'broken' cannot be used because its adapter files are damaged" in out
    assert len(results(out)) == 1, out  # the plain song is made after both failures

    # The adapter is removed: a re-roll says so.
    shutil.rmtree(model_dir / LORAS_DIR / "demo")
    out = chat(tmp_path, model_dir, f"/reroll {styled_id} 5\n")
    assert "The style 'demo' is not installed on this engine" in out and not results(out)
