"""Upload retention: uploaded recordings are deleted once they are older than the setting says.

Uploads exist only to make covers (and re-rolls of them). A sweep deletes every upload written
more than `UPLOAD_RETENTION_DAYS` ago, except the sources of jobs still queued or running. The
bot process runs the sweep (it wrote the uploads); several bot processes on one blob folder may
sweep at once, since deleting a file twice is harmless. Ages come from the file's write time,
compared with the caller's clock, so tests pass a clock instead of waiting. With an object store,
the same sweep deletes local copies of blobs (the bot downloads each track to post it) a day old.

Orphans: a track's MP3 or latents that no `tracks` row points to (an engine stored the file and
then could not record it, or lost its lease while recording it) is deleted once it is older than
`ORPHAN_GRACE`, on the local store and on S3 alike. The grace is far longer than an engine takes from
storing a file to recording its row (a few retries), so a file whose row is about to be written is
never taken. A smaller copy made to fit an upload limit (`<name>.fit<bytes>.mp3`) belongs to its track.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from storage.blobs.store import BlobStore
from storage.contract.types import TERMINAL
from storage.models import jobs_table as jobs
from storage.models import tracks_table as tracks

COPIES_KEEP = timedelta(days=1)
ORPHAN_GRACE = timedelta(days=1)
TRACK_FOLDERS = {"tracks": ".mp3", "latents": ".npy"}  # where an engine stores a track's files, and their suffix


class UploadRetention:
    """Finds and deletes expired uploads."""

    def __init__(self, engine: Engine, blobs: BlobStore, keep_s: float | None) -> None:
        self.engine = engine
        self.blobs = blobs
        self.keep_s = keep_s

    def sweep(self, now: datetime) -> list[str]:
        """Delete the uploads written before `now - keep_s` that no unfinished job needs; return them."""
        if self.keep_s is None:
            return []
        self.blobs.prune_copies(now - COPIES_KEEP)
        cutoff = now - timedelta(seconds=self.keep_s)
        expired = sorted(path for path, written in self.blobs.uploads() if written < cutoff)
        if not expired:
            return []
        in_use = self._in_use(expired)
        gone = [path for path in expired if path not in in_use]
        for path in gone:
            self.blobs.delete(path)
        return gone

    def _in_use(self, paths: list[str], chunk: int = 500) -> set[str]:
        # A queued or running job still reads its source; a later sweep deletes it.
        found: set[str] = set()
        with self.engine.begin() as conn:
            for start in range(0, len(paths), chunk):
                found.update(
                    conn.execute(
                        select(jobs.c.source_blob).where(
                            jobs.c.source_blob.in_(paths[start : start + chunk]), jobs.c.status.not_in(sorted(TERMINAL))
                        )
                    ).scalars()
                )
        return found


class OrphanSweep:
    """Finds and deletes stored track files (MP3s, latents) that no row points to, after a grace."""

    def __init__(self, engine: Engine, blobs: BlobStore, grace: timedelta = ORPHAN_GRACE) -> None:
        self.engine = engine
        self.blobs = blobs
        self.grace = grace

    def sweep(self, now: datetime) -> list[str]:
        """Delete the track files written before `now - grace` that no track row names; return them."""
        cutoff = now - self.grace
        listed = (item for folder in TRACK_FOLDERS for item in self.blobs.stored(folder))
        old = sorted(path for path, written in listed if written < cutoff)
        if not old:
            return []
        recorded = self._recorded({owner_of(path) for path in old})
        gone = [path for path in old if owner_of(path) not in recorded]
        for path in gone:
            self.blobs.delete(path)
        return gone

    def _recorded(self, paths: set[str], chunk: int = 500) -> set[str]:
        # The paths among `paths` that a track row holds, as its song or as its latents.
        found: set[str] = set()
        ordered = sorted(paths)
        with self.engine.begin() as conn:
            for start in range(0, len(ordered), chunk):
                part = ordered[start : start + chunk]
                rows = conn.execute(
                    select(tracks.c.blob_path, tracks.c.latents_blob).where(
                        tracks.c.blob_path.in_(part) | tracks.c.latents_blob.in_(part)
                    )
                )
                for blob_path, latents_blob in rows:
                    found.update(path for path in (blob_path, latents_blob) if path in paths)
        return found


def owner_of(relative: str) -> str:
    """The blob a row would name for a stored file: itself, or the track a `.fit…` copy was made from."""
    folder, _, name = relative.rpartition("/")
    top = relative.split("/", 1)[0]
    stem = name.split(".", 1)[0]
    return f"{folder}/{stem}{TRACK_FOLDERS.get(top, '')}"
