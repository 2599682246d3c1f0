"""/cover with new lyrics and language=es through `python -m songbot chat`, the real ACE-Step engine on the tiny set.

The lyrics are typed on the lines after the command (a `\\` ends the command line in a terminal), as /song's are;
the stored plan carries them and the language, /lyrics shows them, and `/reroll <id> <seed>` is the same audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from storage.db import make_engine
from storage.queue.jobs import Queue
from storage.queue.library import Library
from tests.engine.acestep.test_acestep_console_e2e import RESULT, chat

WORDS = ["[Verse]", "La luna sobre el mar", "me canta una canción"]


def test_a_console_cover_sings_new_spanish_words_and_rerolls_exactly(tmp_path: Path, tiny_set: Path) -> None:
    source = tmp_path / "take.wav"
    t = np.arange(16_000 * 8) / 16_000
    sf.write(str(source), 0.4 * np.sin(2 * np.pi * 330 * t), 16_000)
    out = chat(tmp_path, tiny_set, "\n".join([f"/cover {source} bossa nova language=es seed=3 \\", *WORDS, "", ""]))
    [(song_id, seed, path)] = [(int(i), int(s), Path(p)) for i, s, p in RESULT.findall(out)]
    database = make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}")
    job, track = Queue(database).get(song_id), Library(database).get(song_id)
    lyrics = "\n".join(WORDS)
    assert job is not None and (job.kind, job.spec.lyrics, job.spec.language) == ("cover", lyrics, "es")
    assert track is not None and track.plan is not None and (track.plan.lyrics, track.plan.language) == (lyrics, "es")
    assert "me canta una canción" in chat(tmp_path, tiny_set, f"/lyrics {song_id}\n")
    [(_, again_seed, again)] = [
        (int(i), int(s), Path(p)) for i, s, p in RESULT.findall(chat(tmp_path, tiny_set, f"/reroll {song_id} {seed}\n"))
    ]
    assert again_seed == 3
    assert np.array_equal(sf.read(str(again), always_2d=True)[0], sf.read(str(path), always_2d=True)[0])
