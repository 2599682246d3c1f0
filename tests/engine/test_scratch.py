"""Scratch files a killed engine left are swept once stale; fresh ones (an encode in progress) stay."""

import os
from datetime import timedelta

from engine import scratch
from engine.main import build_worker
from storage.db import utcnow
from tests.helpers import make_settings


def scratch_file(folder, name, age_s, now_s):
    path = folder / name
    path.write_bytes(b"\xff\xfb")
    os.utime(path, (now_s - age_s, now_s - age_s))
    return path


def test_sweep_takes_stale_scratch_files_only(tmp_path):
    tracks = tmp_path / "tracks"
    (tracks / "0000").mkdir(parents=True)
    now_s = 1_800_000_000.0
    stale = scratch_file(tracks / "0000", ".7-1.mp3.ab12.tmp.mp3", scratch.STALE_S + 1, now_s)
    fresh = scratch_file(tracks / "0000", ".8-1.mp3.cd34.tmp.mp3", 5, now_s)
    song = scratch_file(tracks / "0000", "6-1.mp3", scratch.STALE_S * 10, now_s)
    assert scratch.sweep(tracks, now_s) == 1
    assert not stale.exists() and fresh.exists() and song.exists()


def test_the_engine_sweeps_when_it_starts_claiming(tmp_path):
    worker = build_worker(make_settings(tmp_path))
    folder = worker.blobs.root / "tracks" / "0000"
    folder.mkdir(parents=True, exist_ok=True)
    now = utcnow() + timedelta(hours=1)  # the clock is injected; the file's time is the real one
    worker.clock = lambda: now
    left = scratch_file(folder, ".3-1.mp3.ef56.tmp.mp3", 0, os.path.getmtime(folder))
    assert not worker.run_once()  # nothing queued, but the sweep ran
    assert not left.exists()
