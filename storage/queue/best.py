"""`best=N`: the takes of one request, and the decision which of them is posted.

A `best=N` request is N jobs (takes with seeds s, s+1, …), each a song of its own against the limits.
Only the first take gets a delivery row: the group has one status message. That row's `extra` lists
the takes (`best_takes`); the group is named by the first take's id. Each take's score is stored with
its track by the engine (`tracks.score`, a `TakeScore`).

When every take has ended (succeeded, failed, cancelled or dead), `decide` chooses, in one transaction:
the succeeded take with the highest score (an unscored take ranks below every scored one; a tie goes to
the earlier take). It writes every succeeded take's number and whether it was chosen into its score,
points the delivery row at the winner and records the winner in the row (`best_winner`). A process that
dies before the commit leaves nothing decided; one that dies after leaves a row that names its winner,
which the delivery loop posts like any song. So the group is posted once: never two, never none. With no
succeeded take the row keeps the first take, whose failure is posted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from storage.contract.results import TakeScore
from storage.contract.types import SUCCEEDED, TERMINAL, DeliveryView, JobView
from storage.models import deliveries_table, jobs_table, tracks_table
from storage.queue.rows import job_view

deliveries = deliveries_table
jobs = jobs_table
tracks = tracks_table

TAKES_KEY = "best_takes"
WINNER_KEY = "best_winner"


def takes_of(delivery: DeliveryView) -> tuple[int, ...] | None:
    """The take ids of the `best=N` group this delivery posts for, or None for an ordinary job."""
    takes = delivery.extra.get(TAKES_KEY)
    return tuple(int(take) for take in takes) if takes else None


def decided(delivery: DeliveryView) -> bool:
    """Whether this group's winner was chosen (the row then points at it)."""
    return WINNER_KEY in delivery.extra


def record_group(conn: Connection, job_ids: Sequence[int]) -> None:
    """Name the takes in the first take's delivery row, in the transaction that queues them."""
    row = conn.execute(select(deliveries.c.id, deliveries.c.extra).where(deliveries.c.job_id == job_ids[0])).one()
    extra = {**(row.extra or {}), TAKES_KEY: list(job_ids)}
    conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(extra=extra))


def choose(takes: Sequence[int], statuses: Mapping[int, str], scores: Mapping[int, TakeScore | None]) -> int:
    """The take to post: the succeeded one with the highest score; the earliest on a tie or without scores.

    Args:
        takes: The take ids in take order.
        statuses: Each take's job status.
        scores: The stored score of each take that has a track (None: not scored).

    Returns:
        The winner, or the first take when none succeeded (its failure is then posted).
    """
    made = [take for take in takes if statuses.get(take) == SUCCEEDED and take in scores]
    if not made:
        return takes[0]

    def rank(take: int) -> tuple[bool, float, int]:
        score = scores[take]
        return (score is not None, score.total if score is not None else 0.0, -takes.index(take))

    return max(made, key=rank)


class BestOf:
    """The statements on a `best=N` group."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def takes(self, take_ids: Sequence[int]) -> list[JobView]:
        """The jobs of the takes, in take order."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.id.in_(list(take_ids)))).all()
        by_id = {row.id: job_view(row) for row in rows}
        return [by_id[take] for take in take_ids if take in by_id]

    def decide(self, delivery_id: int) -> int | None:
        """Choose the group's winner once every take has ended; None while a take is still open.

        Idempotent: a decided group returns its winner again and changes nothing.
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(deliveries.c.extra).where(deliveries.c.id == delivery_id).with_for_update()).one()
            extra: dict[str, Any] = dict(row.extra or {})
            if WINNER_KEY in extra:
                return int(extra[WINNER_KEY])
            takes = [int(take) for take in extra[TAKES_KEY]]
            rows = conn.execute(select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(takes))).all()
            statuses = {row.id: row.status for row in rows}
            if any(statuses.get(take) not in TERMINAL for take in takes):
                return None
            scores = self._scores(conn, takes)
            winner = choose(takes, statuses, scores)
            self._mark(conn, takes, scores, winner)
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(job_id=winner, extra={**extra, WINNER_KEY: winner})
            )
            return winner

    def _scores(self, conn: Connection, takes: Sequence[int]) -> dict[int, TakeScore | None]:
        """The stored score of each take that has a track."""
        rows = conn.execute(select(tracks.c.job_id, tracks.c.score).where(tracks.c.job_id.in_(list(takes)))).all()
        return {row.job_id: TakeScore.from_stored(row.score) if row.score is not None else None for row in rows}

    def _mark(
        self, conn: Connection, takes: Sequence[int], scores: Mapping[int, TakeScore | None], winner: int
    ) -> None:
        """Write each scored take's number and whether it was chosen into its stored score."""
        for number, take in enumerate(takes, start=1):
            score = scores.get(take)
            if score is None:
                continue
            marked = score.model_copy(update={"take": number, "chosen": take == winner, "best_of": len(takes)})
            conn.execute(update(tracks).where(tracks.c.job_id == take).values(score=marked.stored()))
