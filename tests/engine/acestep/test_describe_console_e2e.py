"""/describe end to end through `python -m songbot chat` with the real ACE-Step engine on the tiny set (CPU).

The tiny LM has random weights: its reading is junk, and the chat still shows a description whose fields
are in range, and its "Make one like this" line queues a song with exactly those fields.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from bot.core import parser
from storage.contract.values import BPM_MAX, BPM_MIN, KEYS, LANGUAGES
from storage.db import make_engine
from storage.queue.jobs import Queue
from tests.engine.acestep.test_acestep_console_e2e import RESULT, chat

SONG_LINE = re.compile(r"^Make one like this:\n(/song .+(?:\n[^/\n].*)*)", re.M)
FIELDS = re.compile(r"^BPM: (\S+) · Key: (.+) · Time signature: (\S+)$", re.M)


def test_describe_a_voice_note_with_the_lm_then_make_one_like_it(tmp_path: Path, tiny_set: Path) -> None:
    note = tmp_path / "voice-note.wav"
    t = np.arange(16_000 * 6) / 16_000
    sf.write(str(note), 0.4 * np.sin(2 * np.pi * 330 * t), 16_000)
    out = chat(tmp_path, tiny_set, f"/describe {note}\n")
    assert "what I heard (ACE-Step's planner)" in out and "Duration: 0:06" in out
    [(bpm, key, signature)] = FIELDS.findall(out)
    assert bpm == "—" or BPM_MIN <= int(bpm) <= BPM_MAX
    assert key == "—" or key in KEYS
    assert signature in ("—", "2/4", "3/4", "4/4", "6/8")
    [line] = SONG_LINE.findall(out)
    request = parser.parse_song(parser.parse_command(line.replace(" \\\n", "\n", 1)))
    assert request.language is None or request.language in LANGUAGES
    assert request.duration_s == 10  # 6 s of recording; the shortest song is 10 s

    made = chat(tmp_path, tiny_set, line + "\n\n")
    [(song_id, _, _)] = RESULT.findall(made)
    spec = Queue(make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}")).get(int(song_id)).spec
    assert (spec.caption, spec.bpm, spec.key, spec.language) == (
        request.description,
        request.bpm,
        request.key,
        request.language,
    )
    assert spec.time_signature == request.time_signature and spec.lyrics == request.lyrics
    assert spec.duration_s == 10 and spec.duration_given
