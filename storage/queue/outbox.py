"""The delivery outbox: where each job's status and result go, and whether they got there.

A bot process claims open rows of its platform with a short lease (so two bot processes
never post the same result), edits the status message as the job moves, and marks the row
`done` only after the result was posted. A crash before that leaves the row open, and the
next process posts it: the result arrives once, however often the job itself ran.

States: `pending` → `done` (the result or the failure sentence was posted) | `told` (the result's
upload was interrupted too often; the user was sent a sentence pointing to `/history` instead) |
`failed` (the platform refused it on every attempt). `unsure` is what older versions left on a post
interrupted twice; no row enters it any more.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Row, and_, case, or_, select, update

from storage.contract.types import TERMINAL, DeliveryView, JobView
from storage.models import deliveries_table, jobs_table
from storage.ops.scrub import Scrubber
from storage.queue.rows import job_view

deliveries = deliveries_table
jobs = jobs_table

PENDING, DONE, TOLD, GAVE_UP, UNSURE = "pending", "done", "told", "failed", "unsure"


class Outbox:
    """All statements on the deliveries table."""

    def __init__(self, engine: Engine, scrub: Scrubber | None = None) -> None:
        self.engine = engine
        # A platform's exception text may hold a token (a Telegram URL, a Discord webhook path).
        self.scrub = scrub or Scrubber()

    def claim_open(
        self, platform: str, owner: str, now: datetime, lease_s: float, limit: int = 50
    ) -> list[tuple[DeliveryView, JobView]]:
        """Lease the open deliveries of `platform` that nobody else holds, with their jobs.

        Finished jobs come first (in id order, so one chat's results keep their order): a result
        never waits behind a long queue. The rest take turns: the row leased longest ago (or never)
        comes next, so with more open rows than `limit` every pass sees other rows instead of the
        same oldest ones.
        """
        free = or_(
            deliveries.c.lease_expires_at.is_(None),
            deliveries.c.lease_expires_at < now,
            deliveries.c.lease_owner == owner,
        )
        finished = jobs.c.status.in_(sorted(TERMINAL))
        with self.engine.begin() as conn:
            ids = (
                conn.execute(
                    select(deliveries.c.id)
                    .join(jobs, jobs.c.id == deliveries.c.job_id)
                    .where(deliveries.c.platform == platform, deliveries.c.state == PENDING, free)
                    .order_by(
                        case((finished, 0), else_=1),
                        case((finished, None), else_=deliveries.c.lease_expires_at).asc().nulls_first(),
                        deliveries.c.id,
                    )
                    .limit(limit)
                    # Lock only the delivery rows: the engine keeps updating the jobs meanwhile.
                    .with_for_update(of=deliveries, skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids))
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
            )
            rows = conn.execute(
                select(deliveries, jobs)
                .join(jobs, jobs.c.id == deliveries.c.job_id)
                .where(deliveries.c.id.in_(ids))
                .order_by(deliveries.c.id)
            ).all()
            return [(_delivery(row._mapping), job_view(_JobRow(row))) for row in rows]

    def record_status(self, delivery_id: int, text: str, message_id: str | None, now: datetime) -> None:
        """Remember the status text shown (so it is never sent twice) and the message to edit."""
        values: dict[str, Any] = {"last_status_text": text, "last_status_at": now}
        if message_id is not None:
            values["status_message_id"] = message_id
        with self.engine.begin() as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))

    def begin_send(self, delivery_id: int, owner: str, now: datetime) -> int | None:
        """Record that the result is about to be posted, before it is; returns the row's resends so far.

        A row whose `sending_at` is still set was being posted by a process that died before it marked
        it: this post is then a resend, and counted. None if another process owns the row now.
        """
        with self.engine.begin() as conn:
            return conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.state == PENDING, deliveries.c.lease_owner == owner)
                .values(
                    sending_at=now,
                    resends=deliveries.c.resends + case((deliveries.c.sending_at.is_(None), 0), else_=1),
                )
                .returning(deliveries.c.resends)
            ).scalar_one_or_none()

    def mark_done(
        self, delivery_id: int, owner: str, now: datetime, state: str = DONE, result_message_id: str | None = None
    ) -> bool:
        """The result (or a sentence, `state` TOLD) was posted; False if another process owns the row.

        Args:
            delivery_id: The row.
            owner: This bot process (its lease).
            now: The time of the post.
            state: DONE for the song or the failure sentence, TOLD for the sentence that stands in for a song.
            result_message_id: The message that carries the result, kept so that a reply to it finds the song.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.state == PENDING,
                    or_(deliveries.c.lease_owner == owner, deliveries.c.lease_owner.is_(None)),
                )
                .values(
                    state=state,
                    delivered_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    result_message_id=result_message_id,
                )
            )
            return result.rowcount == 1

    def retry_later(
        self, delivery_id: int, error: str, now: datetime, delay_s: float, max_attempts: int, maybe_sent: bool = False
    ) -> None:
        """Posting failed: keep the row for another try after `delay_s`, or give up.

        `maybe_sent` (a timeout: the platform may have taken the post) keeps `sending_at`, so the next
        try counts as a resend and says it may be a repeat.
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(deliveries.c.attempts).where(deliveries.c.id == delivery_id)).one()
            attempts = row.attempts + 1
            state = GAVE_UP if attempts >= max_attempts else PENDING
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(
                    attempts=attempts,
                    error=self.scrub(error)[:500],
                    # The platform answered with a failure: the post did not go out, so it is no resend.
                    sending_at=deliveries.c.sending_at if maybe_sent else None,
                    state=state,
                    lease_owner=None,
                    lease_expires_at=now + timedelta(seconds=delay_s),
                )
            )

    def release(self, owner: str) -> None:
        """Drop this process's leases (clean shutdown), so another process can go on at once."""
        with self.engine.begin() as conn:
            conn.execute(
                update(deliveries)
                .where(and_(deliveries.c.lease_owner == owner, deliveries.c.state == PENDING))
                .values(lease_owner=None, lease_expires_at=None)
            )

    def song_of_result(self, platform: str, chat_id: str, message_id: str) -> int | None:
        """The song (job id) whose result was posted as message `message_id` in that chat, or None."""
        with self.engine.begin() as conn:
            return conn.execute(
                select(deliveries.c.job_id).where(
                    deliveries.c.platform == platform,
                    deliveries.c.chat_id == chat_id,
                    deliveries.c.result_message_id == message_id,
                )
            ).scalar_one_or_none()

    def for_job(self, job_id: int) -> DeliveryView | None:
        """The delivery of a job, or None."""
        with self.engine.begin() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.job_id == job_id)).one_or_none()
            return _delivery(row._mapping) if row is not None else None


def _delivery(row: Any) -> DeliveryView:
    return DeliveryView(
        id=row[deliveries.c.id],
        job_id=row[deliveries.c.job_id],
        platform=row[deliveries.c.platform],
        chat_id=row[deliveries.c.chat_id],
        reply_to_message_id=row[deliveries.c.reply_to_message_id],
        status_message_id=row[deliveries.c.status_message_id],
        interaction_token=row[deliveries.c.interaction_token],
        token_expires_at=row[deliveries.c.token_expires_at],
        extra=dict(row[deliveries.c.extra] or {}),
        state=row[deliveries.c.state],
        last_status_text=row[deliveries.c.last_status_text],
        last_status_at=row[deliveries.c.last_status_at],
        attempts=row[deliveries.c.attempts],
        sending_at=row[deliveries.c.sending_at],
        resends=row[deliveries.c.resends],
    )


class _JobRow:
    """Attribute access to the job columns of a joined row (names clash with deliveries')."""

    def __init__(self, row: Row[Any]) -> None:
        self._mapping = row._mapping

    def __getattr__(self, name: str) -> Any:
        return self._mapping[jobs.c[name]]
