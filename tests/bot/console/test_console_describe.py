"""`/describe` end to end through `python -m songbot chat`: real processes, real queue, sketch backend.

The must-show list of issue 22: a song made by the bot, a voice note, a PNG named .mp3, a 1 s clip and a
20-minute file; the fields parse and are in range; the printed "Make one like this" `/song` line queues a
song with exactly those fields.
"""

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from bot.core import parser
from storage.contract.values import BPM_MAX, BPM_MIN, KEYS
from storage.db import make_engine
from storage.queue.jobs import Queue
from tests.bot.console.test_console_e2e import chat, results

DESCRIBED = re.compile(r"^🔎 #(\d+): what I heard \((.+)\)$", re.M)
FIELDS = re.compile(r"^BPM: (\S+) · Key: (.+) · Time signature: (\S+)$", re.M)
SONG_LINE = re.compile(r"^Make one like this:\n(/song .+)$", re.M)


def tone_file(path: Path, seconds: float, rate: int, **options: str) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t))) / 2, rate, **options)
    return path


def test_describe_a_song_the_bot_made_and_make_one_like_it(tmp_path: Path) -> None:
    [(song_id, _, mp3)] = results(chat(tmp_path, "/song lo-fi rain at night duration=12 seed=5 bpm=96 key=Am\n"))
    out = chat(tmp_path, f"/describe {mp3}\n")
    [(described_id, reader)] = DESCRIBED.findall(out)
    assert int(described_id) == song_id + 1 and "sketch backend's guess" in reader
    [(bpm, key, signature)] = FIELDS.findall(out)
    assert BPM_MIN <= int(bpm) <= BPM_MAX and key in KEYS and signature == "4/4"
    assert "Duration: 0:12 · Language: —" in out and "Lyrics: none heard (instrumental)." in out
    assert "A song like it would be" not in out  # 12 s is a song length: the song is as long
    [line] = SONG_LINE.findall(out)
    request = parser.parse_song(parser.parse_command(line))
    assert (request.bpm, request.key, request.time_signature) == (int(bpm), key, 4)
    assert request.duration_s == 12 and request.instrumental

    [(made_id, _, made)] = results(chat(tmp_path, line + "\n"))
    spec = Queue(make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}")).get(made_id).spec
    assert (spec.caption, spec.bpm, spec.key, spec.time_signature) == (request.description, int(bpm), key, 4)
    assert spec.duration_s == 12 and spec.duration_given and spec.instrumental and spec.language is None
    assert sf.info(str(made)).duration == 12.0


def test_describe_a_voice_note_and_refuse_what_is_not_a_recording(tmp_path: Path) -> None:
    voice = tone_file(tmp_path / "voice.ogg", 4.0, 16_000, format="OGG", subtype="VORBIS")
    png = tmp_path / "cat.mp3"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    short = tone_file(tmp_path / "blip.wav", 1.0, 16_000)
    # 20 minutes at 8 kHz mono in FLAC: under the size limit, over the length limit.
    long = tone_file(tmp_path / "long.flac", 20 * 60, 8_000, format="FLAC")
    out = chat(tmp_path, "".join(f"/describe {path}\n" for path in (voice, png, short, long)) + "/describe\n")
    [(_, reader)] = DESCRIBED.findall(out)
    assert "sketch" in reader and "Duration: 0:04" in out
    assert "That file is not audio" in out
    assert "That recording is only 1 second long; recordings to describe need at least 3 seconds." in out
    assert "That recording is too long" in out
    assert "Give the audio file to describe" in out
    assert "Traceback" not in out
