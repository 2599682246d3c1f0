"""Which open deliveries a bot process claims when there are more than one pass takes."""

from datetime import datetime, timedelta

import pytest

from storage.contract.spec import JobSpec
from storage.contract.types import CANCELLED, DeliveryTarget, QueueLimits
from storage.contract.types import UserRef as Ref
from storage.queue.accounts import Accounts
from storage.queue.jobs import Queue
from storage.queue.outbox import Outbox

T0 = datetime(2026, 11, 21, 12, 0, 0)
OPEN = 500


@pytest.fixture
def queue(db):
    return Queue(db, QueueLimits(max_pending_per_user=OPEN, daily_quota=0, max_queued_total=OPEN))


def submit_many(queue, db, count):
    user = Accounts(db).ensure(Ref("telegram", "1", "Ann"), T0).id
    target = DeliveryTarget("telegram", "42")
    return [queue.submit(user, "song", JobSpec(caption="x", duration_s=10), 7, T0, target).id for _ in range(count)]


def claimed_jobs(outbox, now):
    return [job for _, job in outbox.claim_open("telegram", "bot", now, lease_s=60, limit=50)]


def test_a_finished_job_is_claimed_before_500_waiting_ones(queue, db):
    ids = submit_many(queue, db, OPEN)
    outbox = Outbox(db)
    queue.cancel(ids[-1], None, T0)
    first = claimed_jobs(outbox, T0)
    assert len(first) == 50 and ids[-1] in [job.id for job in first]
    assert next(job for job in first if job.id == ids[-1]).status == CANCELLED
    # One that finishes later, in the middle of the line, is in the very next pass.
    queue.cancel(ids[250], None, T0)
    second = claimed_jobs(outbox, T0 + timedelta(seconds=1))
    assert ids[250] in [job.id for job in second]


def test_waiting_deliveries_take_turns_instead_of_the_oldest_50_again(queue, db):
    ids = submit_many(queue, db, OPEN)
    outbox = Outbox(db)
    seen: list[int] = []
    for second in range(OPEN // 50):
        seen += [job.id for job in claimed_jobs(outbox, T0 + timedelta(seconds=second))]
    assert sorted(seen) == ids, "ten passes of 50 see each of the 500 rows once"


def test_a_posted_result_is_found_by_its_message_id_in_its_chat(queue, db):
    first, second = submit_many(queue, db, 2)
    outbox = Outbox(db)
    delivery = outbox.for_job(first)
    assert delivery is not None and outbox.mark_done(delivery.id, "bot", T0, result_message_id="901")
    assert outbox.song_of_result("telegram", "42", "901") == first
    assert outbox.song_of_result("telegram", "43", "901") is None  # the same id in another chat is another message
    assert outbox.song_of_result("discord", "42", "901") is None
    assert outbox.song_of_result("telegram", "42", "902") is None and second != first
