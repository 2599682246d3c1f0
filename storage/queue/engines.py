"""The engines table: each engine process says, every few seconds, that it is up and where it runs.

`songbot status` and the `songbot_engines_up` metric read it. A row whose `seen_at` is older than
the engine's lease belongs to an engine that died without saying goodbye (SIGKILL, a lost host);
engines prune rows that have been silent for a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, insert, select, update

from storage.models import engines_table as engines


@dataclass(frozen=True)
class EngineIdentity:
    """Who an engine process is: its owner id (the lease owner of its jobs), host, device and backend."""

    owner: str
    host: str
    device: str
    backend: str
    pid: int


class EngineRoster:
    """Statements on the engines table."""

    def __init__(self, db: Engine) -> None:
        self.db = db

    def beat(self, me: EngineIdentity, now: datetime) -> None:
        """Say that this engine is up (the first beat adds its row)."""
        with self.db.begin() as conn:
            found = conn.execute(update(engines).where(engines.c.owner == me.owner).values(seen_at=now))
            if found.rowcount == 0:
                conn.execute(
                    insert(engines).values(
                        owner=me.owner,
                        host=me.host,
                        device=me.device,
                        backend=me.backend,
                        pid=me.pid,
                        started_at=now,
                        seen_at=now,
                    )
                )

    def leave(self, owner: str) -> None:
        """A clean stop: the engine is no longer up."""
        with self.db.begin() as conn:
            conn.execute(delete(engines).where(engines.c.owner == owner))

    def owners_of(self, host: str, pid: int) -> list[str]:
        """The owner ids of the engine process `pid` on `host` (a supervisor's child it had to kill)."""
        with self.db.begin() as conn:
            found = conn.execute(select(engines.c.owner).where(engines.c.host == host, engines.c.pid == pid))
            return list(found.scalars())

    def prune(self, silent_since: datetime) -> int:
        """Forget engines not seen since `silent_since`; returns how many."""
        with self.db.begin() as conn:
            return int(conn.execute(delete(engines).where(engines.c.seen_at < silent_since)).rowcount)
