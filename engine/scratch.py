"""Scratch MP3s that a killed engine left behind, swept once nothing can still be writing them.

A running engine removes its own scratch files on every path (`engine/worker.py`); one killed in
the middle of an encode cannot. Its scratch files are named like every scratch file
(`Blobs.temp_path`: ``.<name>.<random>.tmp.mp3`` beside the track), so a later engine removes those
not written to for `STALE_S`: long past any encode (a ten-minute song encodes in about 15 s), so a
file another engine on the same folder is still writing is never taken.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("songbot.engine")

STALE_S = 600.0
SWEEP_EVERY_S = 600.0
PATTERN = ".*.tmp.mp3"


def sweep(tracks: Path, now_s: float, stale_s: float = STALE_S) -> int:
    """Remove the scratch files under `tracks` last written `stale_s` before `now_s` (epoch seconds); how many."""
    removed = 0
    try:
        for path in tracks.rglob(PATTERN):
            try:
                if now_s - path.stat().st_mtime >= stale_s:
                    path.unlink()
                    removed += 1
            except OSError:  # gone already (another engine swept it), or a folder it may not write to
                continue
    except OSError:  # a folder it may not read: the next sweep tries again
        log.warning("could not sweep scratch files")
    if removed:
        log.info("removed stale scratch files", extra={"files": removed})
    return removed
