"""The heartbeat that keeps a batch's leases from its claim until its tracks are stored, failed or released.

It starts right after the claim, before the uploads are read and decoded, so that a slow decode
is never taken for a dead engine. A job that fails while the batch is prepared is dropped from it
first, so that its finished row (which no longer renews) does not read as a lost lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from storage.contract.types import JobView
from storage.queue.jobs import Queue

log = logging.getLogger("songbot.engine")


class Heartbeat:
    """Renews the leases of a running batch every third of the lease; `lost` once one is gone."""

    def __init__(
        self, queue: Queue, owner: str, lease_s: float, clock: Callable[[], datetime], jobs: list[JobView]
    ) -> None:
        self.queue = queue
        self.owner = owner
        self.lease_s = lease_s
        self.clock = clock
        self.jobs = list(jobs)
        self.lost = False
        self._lock = threading.Lock()  # a beat and a drop never interleave
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def start(self) -> None:
        """Start renewing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the batch is stored, failed or released)."""
        self._done.set()
        self._thread.join(timeout=5)

    def drop(self, job: JobView) -> None:
        """Stop renewing one job (it is about to be failed); waits for a beat in progress to end."""
        with self._lock:
            self.jobs = [kept for kept in self.jobs if kept.id != job.id]

    def _run(self) -> None:
        while not self._done.wait(self.lease_s / 3):
            with self._lock:
                self._beat()

    def _beat(self) -> None:
        for job in self.jobs:
            try:
                if not self.queue.renew(job, self.owner, self.clock(), self.lease_s):
                    self.lost = True
            except Exception:  # the next beat tries again; a lease outlasts a few missed beats
                log.exception("lease renewal failed", extra={"job": job.id})
