"""The bot process's periodic sweep of expired uploads and of orphaned track files (see `storage.blobs.retention`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from bot.core.service import SongService
from storage.blobs.retention import OrphanSweep, UploadRetention
from storage.db import utcnow

log = logging.getLogger("songbot.uploads")

SWEEP_EVERY_S = 3600.0


class UploadSweeper:
    """Deletes uploads older than UPLOAD_RETENTION_DAYS and track files no row names: at start, then every `every_s`."""

    def __init__(
        self,
        retention: UploadRetention,
        clock: Callable[[], datetime] = utcnow,
        every_s: float = SWEEP_EVERY_S,
        orphans: OrphanSweep | None = None,
    ) -> None:
        self.retention = retention
        self.clock = clock
        self.every_s = every_s
        self.orphans = orphans

    @classmethod
    def for_service(cls, service: SongService, every_s: float = SWEEP_EVERY_S) -> UploadSweeper:
        """A sweeper over the service's database and blob folder, with its clock."""
        engine, blobs = service.queue.engine, service.blobs
        retention = UploadRetention(engine, blobs, service.settings.upload_retention_s)
        return cls(retention, service.clock, every_s, OrphanSweep(engine, blobs))

    async def sweep_once(self) -> list[str]:
        """Delete what has expired now; returns the deleted blobs' relative paths."""
        gone = await asyncio.to_thread(self.retention.sweep, self.clock())
        if gone:
            log.info("deleted expired uploads", extra={"count": len(gone)})
        if self.orphans is not None:
            orphaned = await asyncio.to_thread(self.orphans.sweep, self.clock())
            if orphaned:
                log.warning("deleted track files no song points to", extra={"count": len(orphaned)})
            gone += orphaned
        return gone

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until `stop` is set; a failed sweep is logged and tried again next time."""
        if self.retention.keep_s is None and self.orphans is None:
            return
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("upload sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every_s)
