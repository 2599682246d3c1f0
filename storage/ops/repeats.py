"""Quiet outages: a failure that repeats on every poll is logged once, then now and then with a count.

With the database down, a loop that polls twice a second would write a traceback per poll (hundreds a
minute). `RepeatedErrors` logs the first failure in full, the same failure again only at back-off
(1 s, 2 s, 4 s … up to `max_every_s`) as one line with how many there were, a different failure in full,
and one line when the loop works again. Time is passed in (`clock`), so tests control it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

FIRST_REPEAT_S = 1.0
MAX_EVERY_S = 300.0


class RepeatedErrors:
    """The log of one polling loop's failures (one instance per loop)."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        clock: Callable[[], float] = time.monotonic,
        first_repeat_s: float = FIRST_REPEAT_S,
        max_every_s: float = MAX_EVERY_S,
    ) -> None:
        self.log = log
        self.what = what
        self.clock = clock
        self.first_repeat_s = first_repeat_s
        self.max_every_s = max_every_s
        self._key: tuple[str, str] | None = None
        self.count = 0  # failures in a row, the first included
        self._since = 0.0
        self._every_s = first_repeat_s
        self._next_at = 0.0

    def failed(self, error: BaseException) -> None:
        """Record one failure of the loop; log it if it is new or its back-off has run out."""
        key = _key(error)
        now = self.clock()
        if key != self._key:
            self._start(key, now)
            self.log.error("%s failed", self.what, exc_info=error, extra={"error": key[0]})
            return
        self.count += 1
        if now >= self._next_at:
            self.log.warning(
                "%s still failing",
                self.what,
                extra={"error": key[0], "failures": self.count, "for_s": round(now - self._since, 1)},
            )
            self._every_s = min(self._every_s * 2, self.max_every_s)
            self._next_at = now + self._every_s

    def recovered(self) -> None:
        """Record that the loop worked; after failures, say so once."""
        if self._key is None:
            return
        self.log.info(
            "%s works again",
            self.what,
            extra={"failures": self.count, "for_s": round(self.clock() - self._since, 1)},
        )
        self._key = None
        self.count = 0

    def _start(self, key: tuple[str, str], now: float) -> None:
        self._key, self.count, self._since = key, 1, now
        self._every_s = self.first_repeat_s
        self._next_at = now + self._every_s


def _key(error: BaseException) -> tuple[str, str]:
    """What makes two failures the same: the error's type and the first line of its text."""
    text = str(error).strip().splitlines()
    return type(error).__name__, (text[0] if text else "")[:200]
