"""Takes: several jobs queued in one transaction, all or none, each counted against the limits."""

import pytest

from storage.contract.errors import LimitError, UserError
from storage.contract.spec import JobSpec
from storage.contract.types import DeliveryTarget
from tests.storage.queue.test_jobs import T0, accounts, queue, track, user

__all__ = ["accounts", "queue"]
SPEC = JobSpec(caption="x", duration_s=10.0)


def takes(queue, uid, seeds, now=T0):
    pairs = [(seed, DeliveryTarget("console", "c")) for seed in seeds]
    return queue.submit_takes(uid, "cover", SPEC, pairs, now)


def test_takes_get_their_own_tags_and_outbox_rows(queue, accounts):
    uid = user(accounts)
    jobs = takes(queue, uid, [5, 6, 7])
    assert [job.seed for job in jobs] == [5, 6, 7]
    assert [job.vstart for job in jobs] == [0.0, 10.0, 20.0]
    newcomer = queue.submit(user(accounts, "b"), "cover", SPEC, 1, T0)
    assert newcomer.vstart == 0.0  # a flood of takes does not push others back


def test_takes_are_all_or_none_within_the_pending_cap_and_the_quota(queue, accounts, db):
    uid = user(accounts)
    takes(queue, uid, [1])
    with pytest.raises(LimitError, match="3 takes would put 4 songs in the queue, and the limit is 3"):
        takes(queue, uid, [2, 3, 4])
    assert len(queue.pending_of(uid)) == 1
    for job in queue.claim("w", 1, T0, 30):
        queue.complete(job, "w", track(), T0)
    takes(queue, uid, [2, 3])  # 3 of the 5 songs of the day
    for job in queue.claim("w", 2, T0, 30):
        queue.complete(job, "w", track(), T0)
    with pytest.raises(LimitError, match="You have 2 songs left for today, not 3"):
        takes(queue, uid, [4, 5, 6])
    assert len(takes(queue, uid, [4, 5])) == 2


def test_the_queue_holds_the_bounds_of_takes_and_seeds_itself(queue, accounts):
    # Whatever called it (an adapter that parsed nothing, a script), the queue refuses what the contract does.
    uid = user(accounts)
    with pytest.raises(UserError, match="takes must be between 1 and 4"):
        takes(queue, uid, [1, 2, 3, 4, 5])
    with pytest.raises(UserError, match="takes must be between 1 and 4"):
        takes(queue, uid, [])
    with pytest.raises(UserError, match="seed must be between 0 and 4294967295"):
        queue.submit(uid, "cover", SPEC, 2**32, T0)
    assert queue.pending_of(uid) == []
    assert len(takes(queue, uid, [0, 2**32 - 1])) == 2
