"""Upload retention: uploaded recordings are deleted once they are older than the setting says.

Uploads exist only to make covers (and re-rolls of them). A sweep deletes every upload written
more than `UPLOAD_RETENTION_DAYS` ago, except the sources of jobs still queued or running. The
bot process runs the sweep (it wrote the uploads); several bot processes on one blob folder may
sweep at once, since deleting a file twice is harmless. Ages come from the file's write time,
compared with the caller's clock, so tests pass a clock instead of waiting. With an object store,
the same sweep deletes local copies of blobs (the bot downloads each track to post it) a day old.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from storage.blobstore import BlobStore
from storage.models import jobs_table as jobs
from storage.types import TERMINAL

COPIES_KEEP = timedelta(days=1)


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
