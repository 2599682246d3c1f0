"""End to end through `python -m songbot chat` with the real ACE-Step engine on the tiny set (CPU)."""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from storage.db import make_engine
from storage.media import audio
from storage.queue.jobs import Queue
from tests.helpers import REPO

RESULT = re.compile(r"^✅ #(\d+) seed (\d+) (/.+\.mp3)$", re.M)


def chat(tmp_path: Path, model_dir: Path, text: str, **extra: str) -> str:
    """Run the console chat with ENGINE_BACKEND=acestep on ``model_dir``; return its stdout."""
    env = dict(os.environ)
    env.update(
        {
            "SONGBOT_DATA_DIR": str(tmp_path / "data"),
            "MODEL_DIR": str(model_dir),
            "ENGINE_BACKEND": "acestep",
            "ENGINE_DEVICE": "cpu",
            "ENGINE_POLL_S": "0.1",
            "DELIVERY_POLL_S": "0.1",
            "STATUS_EDIT_INTERVAL_S": "0",
            "OMP_NUM_THREADS": "1",  # tiny models run fastest on one thread of a shared machine
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "songbot", "chat"],
        input=text,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=True,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    return done.stdout


def test_song_cover_of_a_voice_note_and_exact_reroll_in_a_shared_batch(tmp_path: Path, tiny_set: Path) -> None:
    source = tmp_path / "voice-note.wav"  # 8 s, like a voice note
    t = np.arange(16_000 * 8) / 16_000
    sf.write(str(source), 0.4 * np.sin(2 * np.pi * 330 * t), 16_000)
    commands = f"/song lo-fi rain at night duration=10 seed=5\n\n/cover {source} bossa nova seed=3\n"
    out = chat(tmp_path, tiny_set, commands)
    found = sorted((int(i), int(s), Path(p)) for i, s, p in RESULT.findall(out))
    assert len(found) == 2, out
    (song_id, song_seed, song_path), (_, cover_seed, cover_path) = found
    assert "not ACE-Step" not in out  # the sketch backend's notice must not appear
    assert song_seed == 5 and cover_seed == 3
    song, rate = sf.read(str(song_path), dtype="float32", always_2d=True)
    assert rate == 48_000 and abs(song.shape[0] / rate - 10.0) < 0.1 and np.abs(song).max() > 0
    cover, _ = sf.read(str(cover_path), dtype="float32", always_2d=True)
    assert abs(cover.shape[0] / rate - 8.0) < 0.1
    assert audio.read_tags(song_path)["song_id"] == str(song_id)
    assert_reroll_in_a_shared_batch_is_exact(tmp_path, tiny_set, song_id, song)


def assert_reroll_in_a_shared_batch_is_exact(tmp_path: Path, tiny_set: Path, song_id: int, song: np.ndarray) -> None:
    """``/reroll <id> 5`` claimed in one batch with two other songs gives the song's decoded samples."""
    # Paused, the engine claims nothing: the re-roll and two other songs are queued, then claimed as one batch.
    commands = (
        f"/admin pause\n/reroll {song_id} 5\n/song dub techno at dawn duration=12 seed=7\n"
        "/song a choir in a cave duration=10 seed=8 instrumental=true\n/admin resume\n"
    )
    out = chat(tmp_path, tiny_set, commands, ADMIN_IDS=f"console:{getpass.getuser()}", ENGINE_MAX_BATCH="4")
    found = sorted((int(i), int(s), Path(p)) for i, s, p in RESULT.findall(out))
    assert len(found) == 3, out
    (_, reroll_seed, reroll_path), *_ = found
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}"))
    jobs = [queue.get(job_id) for job_id, _, _ in found]
    assert jobs[0].parent_id == song_id and reroll_seed == 5
    assert len({job.started_at for job in jobs}) == 1, "the three jobs were not claimed as one batch"
    again, _ = sf.read(str(reroll_path), dtype="float32", always_2d=True)
    assert np.array_equal(song, again), "the re-roll in a batch of three must give the song's decoded samples"
