"""`best=N` groups: the takes named in one delivery row, and the one decision which take is posted."""

from dataclasses import replace

import pytest
from sqlalchemy import select, update

from storage.contract.results import TakeScore
from storage.contract.spec import JobSpec
from storage.contract.types import FAILED, SUCCEEDED, DeliveryTarget
from storage.models import deliveries_table, tracks_table
from storage.queue import best
from storage.queue.best import BestOf, choose
from storage.queue.outbox import Outbox
from tests.helpers import Killed
from tests.storage.queue.test_jobs import T0, accounts, queue, track, user

__all__ = ["accounts", "queue"]
SPEC = JobSpec(caption="x", duration_s=10.0, best_of=3)
TARGET = DeliveryTarget("console", "c", status_message_id="s1")


def submit_best(queue, uid, spec=SPEC):
    seeds = [7 + n for n in range(spec.best_of)]
    return queue.submit_takes(
        uid, "song", spec, list(zip(seeds, [TARGET] + [None] * (spec.best_of - 1), strict=True)), T0
    )


def make(queue, job, total):
    [claimed] = queue.claim("w", 1, T0, 30)
    assert claimed.id == job.id
    score = None if total is None else TakeScore(total=total, conditions={"caption": total}, best_of=3)
    queue.complete(claimed, "w", replace(track(job.seed), score=score), T0)


def stored_scores(db, takes):
    with db.begin() as conn:
        rows = conn.execute(select(tracks_table.c.job_id, tracks_table.c.score).where(tracks_table.c.job_id.in_(takes)))
        return {row.job_id: TakeScore.from_stored(row.score) for row in rows}


def test_choose_takes_the_highest_score_and_the_earliest_on_a_tie():
    made = {1: SUCCEEDED, 2: SUCCEEDED, 3: SUCCEEDED}
    assert choose([1, 2, 3], made, {1: TakeScore(total=0.2), 2: TakeScore(total=0.7), 3: TakeScore(total=0.5)}) == 2
    assert choose([1, 2, 3], made, {1: TakeScore(total=0.5), 2: TakeScore(total=0.5), 3: TakeScore(total=0.1)}) == 1
    assert choose([1, 2, 3], made, {1: None, 2: TakeScore(total=-3.0), 3: None}) == 2  # unscored ranks last
    assert choose([1, 2, 3], {1: FAILED, 2: SUCCEEDED, 3: FAILED}, {2: TakeScore(total=0.1)}) == 2
    assert choose([1, 2, 3], {1: FAILED, 2: FAILED, 3: FAILED}, {}) == 1  # no song: the first take's failure


def test_a_group_has_one_delivery_that_names_its_takes(queue, accounts):
    jobs = submit_best(queue, user(accounts))
    outbox = Outbox(queue.engine)
    row = outbox.for_job(jobs[0].id)
    assert best.takes_of(row) == tuple(job.id for job in jobs) and not best.decided(row)
    assert row.status_message_id == "s1"
    assert [outbox.for_job(job.id) for job in jobs[1:]] == [None, None]  # one status message for the group
    assert all(job.spec.best_of == 3 for job in jobs) and [job.seed for job in jobs] == [7, 8, 9]


def test_the_takes_of_a_best_of_spec_share_the_first_ones_delivery(queue, accounts):
    uid = user(accounts)
    with pytest.raises(ValueError, match="best=N"):
        queue.submit_takes(uid, "song", SPEC, [(1, TARGET), (2, TARGET), (3, None)], T0)
    assert queue.pending_of(uid) == []
    alone = queue.submit(uid, "song", SPEC, 1, T0)  # an engine test or a script: a take without a delivery
    assert alone.spec.best_of == 3 and Outbox(queue.engine).for_job(alone.id) is None


def test_decide_waits_for_every_take_then_chooses_the_best_once(queue, accounts, db):
    jobs = submit_best(queue, user(accounts))
    ids = [job.id for job in jobs]
    group = BestOf(db)
    row = Outbox(db).for_job(ids[0])
    make(queue, jobs[0], 0.4)
    make(queue, jobs[1], 0.9)
    assert group.decide(row.id) is None  # the third take is still queued
    [claimed] = queue.claim("w", 1, T0, 30)
    queue.fail(claimed, "w", "It broke.", T0)  # a take that fails does not block the others
    assert group.decide(row.id) == ids[1]
    moved = Outbox(db).for_job(ids[1])
    assert moved is not None and moved.id == row.id and best.decided(moved)  # the row now posts the winner
    assert Outbox(db).for_job(ids[0]) is None
    scores = stored_scores(db, ids)
    assert (scores[ids[0]].take, scores[ids[0]].chosen) == (1, False)
    assert (scores[ids[1]].take, scores[ids[1]].chosen, scores[ids[1]].total) == (2, True, 0.9)
    assert ids[2] not in scores  # failed: no track
    assert group.decide(row.id) == ids[1] and stored_scores(db, ids) == scores  # idempotent


def test_a_crash_inside_the_decision_leaves_it_undecided(queue, accounts, db, monkeypatch):
    jobs = submit_best(queue, user(accounts))
    for job, total in zip(jobs, (0.1, 0.3, 0.2), strict=True):
        make(queue, job, total)
    row = Outbox(db).for_job(jobs[0].id)
    group = BestOf(db)

    def dies(conn, takes, scores, winner):
        conn.execute(update(tracks_table).values(score=None))  # half-way through the writes
        raise Killed()

    monkeypatch.setattr(group, "_mark", dies)
    with pytest.raises(Killed):
        group.decide(row.id)
    assert not best.decided(Outbox(db).for_job(jobs[0].id))
    assert all(score.take is None for score in stored_scores(db, [job.id for job in jobs]).values())
    monkeypatch.undo()
    assert group.decide(row.id) == jobs[1].id  # the next pass decides, once


def test_a_group_with_no_song_posts_the_first_takes_failure(queue, accounts, db):
    jobs = submit_best(queue, user(accounts), JobSpec(caption="x", duration_s=10.0, best_of=2))
    for _ in jobs:
        [claimed] = queue.claim("w", 1, T0, 30)
        queue.fail(claimed, "w", "It broke.", T0)
    row = Outbox(db).for_job(jobs[0].id)
    assert BestOf(db).decide(row.id) == jobs[0].id
    with db.begin() as conn:
        assert (
            conn.execute(select(deliveries_table.c.job_id).where(deliveries_table.c.id == row.id)).scalar()
            == jobs[0].id
        )
