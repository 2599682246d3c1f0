"""The bot process's periodic sweep of expired uploads (see `storage.retention`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from bot.core.service import SongService
from storage.db import utcnow
from storage.retention import UploadRetention

log = logging.getLogger("songbot.uploads")

SWEEP_EVERY_S = 3600.0


class UploadSweeper:
    """Deletes uploads older than UPLOAD_RETENTION_DAYS: once at start, then every `every_s`."""

    def __init__(
        self, retention: UploadRetention, clock: Callable[[], datetime] = utcnow, every_s: float = SWEEP_EVERY_S
    ) -> None:
        self.retention = retention
        self.clock = clock
        self.every_s = every_s

    @classmethod
    def for_service(cls, service: SongService, every_s: float = SWEEP_EVERY_S) -> UploadSweeper:
        """A sweeper over the service's database and blob folder, with its clock."""
        retention = UploadRetention(service.queue.engine, service.blobs, service.settings.upload_retention_s)
        return cls(retention, service.clock, every_s)

    async def sweep_once(self) -> list[str]:
        """Delete what has expired now; returns the deleted uploads' relative paths."""
        gone = await asyncio.to_thread(self.retention.sweep, self.clock())
        if gone:
            log.info("deleted expired uploads", extra={"count": len(gone)})
        return gone

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until `stop` is set; a failed sweep is logged and tried again next time."""
        if self.retention.keep_s is None:
            return
        while not stop.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("upload sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every_s)
