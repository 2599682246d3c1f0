"""The engine's presence: a thread that tells the engines table, every third of a lease, that it is up.

It beats only while the worker's loop runs, so a fresh beat means "models loaded and serving";
`/readyz` asks `ready()`. On a clean stop the row is removed; after SIGKILL it goes stale, and
`songbot status` shows how long ago the engine was last heard from.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from storage.db import utcnow
from storage.ops.repeats import RepeatedErrors
from storage.queue.engines import EngineIdentity, EngineRoster

log = logging.getLogger("songbot.engine")

FORGET_AFTER = timedelta(days=1)


class Presence:
    """Beats for one engine until `stop()`."""

    def __init__(
        self,
        roster: EngineRoster,
        me: EngineIdentity,
        every_s: float,
        serving: Callable[[], bool],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.roster = roster
        self.me = me
        self.every_s = every_s
        self.serving = serving
        self.clock = clock
        self.last_beat: float | None = None  # time.monotonic() of the last successful beat
        self._done = threading.Event()
        self.errors = RepeatedErrors(log, "engine heartbeat")
        self._thread = threading.Thread(target=self._run, name="engine-presence", daemon=True)

    def start(self) -> Presence:
        """Beat in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and remove this engine's row."""
        self._done.set()
        self._thread.join(timeout=5)
        try:
            self.roster.leave(self.me.owner)
        except Exception:  # noqa: BLE001 - the row goes stale instead; status says so
            log.warning("could not remove the engine's row", extra={"owner": self.me.owner})

    def ready(self) -> str | None:
        """None while the loop serves and its last beat is recent, else why not."""
        if not self.serving():
            return "engine loop not running"
        if self.last_beat is None or time.monotonic() - self.last_beat > 3 * self.every_s:
            return "engine heartbeat late"
        return None

    def beat(self) -> None:
        """One beat (when the loop serves)."""
        if self.serving():
            self.roster.beat(self.me, self.clock())
            self.last_beat = time.monotonic()

    def _run(self) -> None:
        try:
            self.roster.prune(self.clock() - FORGET_AFTER)
        except Exception:  # noqa: BLE001 - pruning is housekeeping
            log.warning("could not prune old engine rows")
        while True:
            try:
                self.beat()
                self.errors.recovered()
            except Exception as error:  # noqa: BLE001 - the database may come back; readiness says it is late
                self.errors.failed(error)
            if self._done.wait(self.every_s):
                return
