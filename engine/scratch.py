"""Scratch MP3s: removed by the engine that wrote them, or swept once stale if it was killed.

A running engine removes its own scratch files on every path (`engine/worker.py`); one killed in
the middle of an encode cannot. Its scratch files are named like every scratch file
(`Blobs.temp_path`: ``.<name>.<random>.tmp.mp3`` beside the track), so a later engine removes those
not written to for `STALE_S`: long past any encode (a ten-minute song encodes in about 15 s), so a
file another engine on the same folder is still writing is never taken.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
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


class Sweeper:
    """Sweeps a tracks folder at the first call, then every `SWEEP_EVERY_S`."""

    def __init__(self, tracks: Path) -> None:
        self.tracks = tracks
        self._next_s = 0.0  # monotonic

    def now_and_then(self, now: datetime) -> None:
        """Sweep if it is time; `now` is the engine's clock (naive UTC), which tests move."""
        if time.monotonic() >= self._next_s:
            self._next_s = time.monotonic() + SWEEP_EVERY_S
            sweep(self.tracks, now.replace(tzinfo=UTC).timestamp())


def discard(path: Path | None) -> None:
    """Remove a file if it is there; one that can't be removed (a read-only folder) is logged and left."""
    if path is None:
        return
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        log.warning("could not remove a file", extra={"file": path.name, "errno": error.errno})
