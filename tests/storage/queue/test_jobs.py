"""Queue operations on a real database (SQLite, and PostgreSQL where one answers)."""

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert, select

from storage.contract.errors import LeaseLost, LimitError, NotFound, UserError
from storage.contract.results import LyricTiming, ModelInfo, StyleRef, TakeScore, TimedLine, TrackMeta
from storage.contract.spec import JobSpec, Plan
from storage.contract.types import (
    CANCELLED,
    DEAD,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    DeliveryTarget,
    NewTrack,
    QueueLimits,
)
from storage.contract.types import UserRef as Ref
from storage.models import Job
from storage.queue import fairness
from storage.queue.accounts import Accounts
from storage.queue.jobs import Queue
from storage.queue.library import Library
from storage.queue.outbox import Outbox

T0 = datetime(2026, 11, 21, 12, 0, 0)


def track(seed: int = 1) -> NewTrack:
    return NewTrack(
        blob_path="tracks/x.mp3",
        duration_s=10.0,
        seed=seed,
        sha256="0" * 64,
        title="T",
        caption="c",
        lyrics="",
        meta=TrackMeta(bpm=90),
        model=ModelInfo(backend="sketch"),
        plan=Plan(audio_codes=(1, 2, 3)),
    )


@pytest.fixture
def queue(db):
    return Queue(db, QueueLimits(max_pending_per_user=3, daily_quota=5, max_attempts=2, max_queued_total=100))


@pytest.fixture
def accounts(db):
    return Accounts(db)


def user(accounts, name="a", admin=False):
    return accounts.ensure(Ref("console", name, name), T0, admin=admin).id


def submit(queue, user_id, cost=10.0, now=T0, target=None, **kwargs):
    # A cover is charged exactly its length, which keeps the tag arithmetic of these tests plain.
    return queue.submit(user_id, "cover", JobSpec(caption="x", duration_s=cost), 7, now, target, **kwargs)


def test_submit_claim_complete(queue, accounts, db):
    uid = user(accounts)
    job = submit(queue, uid, target=DeliveryTarget("console", "chat"))
    assert job.status == QUEUED and job.vstart == 0.0 and job.attempts == 0
    [claimed] = queue.claim("w1", 4, T0, lease_s=30)
    assert claimed.id == job.id and claimed.status == RUNNING and claimed.attempts == 1
    assert claimed.lease_owner == "w1"
    queue.complete(claimed, "w1", track(), T0)
    done = queue.get(job.id)
    assert done.status == SUCCEEDED and done.progress == 100.0
    stored = Library(db).get(job.id)
    assert stored.seed == 1 and stored.plan == Plan(audio_codes=(1, 2, 3)) and stored.kind == "cover"
    assert Outbox(db).for_job(job.id).chat_id == "chat"
    assert stored.timing is None and stored.score is None and stored.style is None


def test_a_tracks_timing_score_and_style_round_trip(queue, accounts, db):
    job = submit(queue, user(accounts), target=DeliveryTarget("console", "chat"))
    [claimed] = queue.claim("w1", 1, T0, lease_s=30)
    timing = LyricTiming(lines=(TimedLine(start_s=1.5, end_s=3.25, text="rain on the roof"),))
    score = TakeScore(total=-1.25, conditions={"caption": -0.5, "lyrics": -0.75}, best_of=3, chosen=True)
    style = StyleRef(name="demo", scale=0.5, sha256="ab" * 32)
    made = replace(track(), timing=timing, score=score, style=style)
    queue.complete(claimed, "w1", made, T0)
    stored = Library(db).get(job.id)
    assert (stored.timing, stored.score, stored.style) == (timing, score, style)


def test_claim_takes_a_batch_in_start_tag_order(queue, accounts):
    a, b = user(accounts, "a"), user(accounts, "b")
    a1, a2, a3 = (submit(queue, a) for _ in range(3))
    b1 = submit(queue, b)
    assert (a1.vstart, a2.vstart, a3.vstart, b1.vstart) == (0.0, 10.0, 20.0, 0.0)
    batch = queue.claim("w", 2, T0, 30)
    assert [job.id for job in batch] == [a1.id, b1.id]
    assert [job.id for job in queue.claim("w", 5, T0, 30)] == [a2.id, a3.id]
    assert queue.claim("w", 5, T0, 30) == []


def test_clock_advances_so_newcomers_go_next(queue, accounts):
    heavy, light = user(accounts, "heavy", admin=True), user(accounts, "light")
    flood = [submit(queue, heavy) for _ in range(10)]
    queue.claim("w", 1, T0, 30)
    queue.claim("w", 1, T0, 30)  # heavy's second job: clock = 10
    newcomer = submit(queue, light)
    assert newcomer.vstart == 10.0
    [next_job] = queue.claim("w", 1, T0, 30)
    # The newcomer (start tag 10) goes before the rest of the flood (20, 30, ...).
    assert next_job.id == newcomer.id
    assert queue.claim("w", 1, T0, 30)[0].id == flood[2].id


def test_claim_skips_jobs_not_yet_due(queue, accounts):
    uid = user(accounts)
    submit(queue, uid, now=T0 + timedelta(seconds=60))
    assert queue.claim("w", 1, T0, 30) == []
    assert len(queue.claim("w", 1, T0 + timedelta(seconds=61), 30)) == 1


def test_complete_is_fenced(queue, accounts):
    uid = user(accounts)
    submit(queue, uid)
    [job] = queue.claim("w1", 1, T0, lease_s=5)
    with pytest.raises(LeaseLost):
        queue.complete(job, "w2", track(), T0)
    # The lease expires, the reaper requeues, another worker takes it: the first can't publish.
    later = T0 + timedelta(seconds=6)
    assert queue.reap(later) == [(job.id, QUEUED)]
    [again] = queue.claim("w2", 1, later, 30)
    assert again.attempts == 2
    assert not queue.renew(job, "w1", later, 30)
    assert not queue.report(job, "w1", "generating", 50, later, 30)
    with pytest.raises(LeaseLost):
        queue.complete(job, "w1", track(), later)
    assert not queue.fail(job, "w1", "nope", later)
    queue.complete(again, "w2", track(), later)
    assert queue.get(job.id).status == SUCCEEDED


def test_renew_and_report_extend_the_lease(queue, accounts):
    uid = user(accounts)
    submit(queue, uid)
    [job] = queue.claim("w", 1, T0, lease_s=5)
    assert queue.report(job, "w", "generating", 42.0, T0 + timedelta(seconds=4), lease_s=5)
    assert queue.reap(T0 + timedelta(seconds=6)) == []
    assert queue.get(job.id).stage == "generating" and queue.get(job.id).progress == 42.0
    assert queue.renew(job, "w", T0 + timedelta(seconds=8), lease_s=5)
    assert queue.reap(T0 + timedelta(seconds=12)) == []
    assert queue.reap(T0 + timedelta(seconds=14)) == [(job.id, QUEUED)]


def test_reap_marks_dead_after_max_attempts(queue, accounts):
    uid = user(accounts)
    job = submit(queue, uid)
    now = T0
    for _attempt in range(2):
        [claimed] = queue.claim("w", 1, now, lease_s=1)
        now += timedelta(seconds=2)
        reaped = queue.reap(now)
    assert reaped == [(job.id, DEAD)]
    dead = queue.get(job.id)
    assert dead.status == DEAD and dead.error and "gave up" in dead.error
    assert claimed.attempts == 2


def test_fail_keeps_the_sentence(queue, accounts):
    uid = user(accounts)
    submit(queue, uid)
    [job] = queue.claim("w", 1, T0, 30)
    assert queue.fail(job, "w", "The source is too short.", T0)
    failed = queue.get(job.id)
    assert failed.status == FAILED and failed.error == "The source is too short."


def test_release_returns_the_job_without_counting_the_attempt(queue, accounts):
    uid = user(accounts)
    submit(queue, uid)
    [job] = queue.claim("w", 1, T0, 30)
    assert queue.release(job, "w")
    again = queue.get(job.id)
    assert again.status == QUEUED and again.attempts == 0 and again.lease_owner is None


def test_release_owned_gives_back_only_that_engines_jobs_at_once(queue, accounts):
    first, second = user(accounts, "1"), user(accounts, "2")
    submit(queue, first)
    submit(queue, second)
    [mine] = queue.claim("stopping", 1, T0, 30)
    [theirs] = queue.claim("other", 1, T0, 30)
    assert queue.release_owned("stopping") == [mine.id]
    assert queue.release_owned("stopping") == []  # nothing left to give back
    again = queue.get(mine.id)
    assert again.status == QUEUED and again.attempts == 0 and again.lease_owner is None
    assert queue.get(theirs.id).lease_owner == "other"
    # The next engine runs it now, not once the old lease would have run out.
    assert [job.id for job in queue.claim("next", 1, T0, 30)] == [mine.id]


def test_cancel_refunds_the_last_tag(queue, accounts):
    uid = user(accounts)
    first, second = submit(queue, uid), submit(queue, uid)
    cancelled = queue.cancel(second.id, uid, T0)
    assert cancelled.status == CANCELLED
    # The refund makes the next job start where the cancelled one would have.
    assert submit(queue, uid).vstart == second.vstart
    with pytest.raises(NotFound):
        queue.cancel(first.id, uid + 999, T0)
    queue.claim("w", 1, T0, 30)
    with pytest.raises(UserError, match="already being made"):
        queue.cancel(first.id, uid, T0)


def test_limits(queue, accounts, db):
    uid = user(accounts)
    for _ in range(3):
        submit(queue, uid)
    with pytest.raises(LimitError, match="already have 3"):
        submit(queue, uid)
    # Two finish; the daily quota (5) then stops the sixth job of the day.
    for job in queue.claim("w", 3, T0, 30):
        queue.complete(job, "w", track(), T0)
    submit(queue, uid)
    submit(queue, uid)
    with pytest.raises(LimitError, match="5 songs for today"):
        submit(queue, uid)
    # Tomorrow the quota is fresh.
    assert submit(queue, uid, now=T0 + timedelta(days=1)).status == QUEUED
    # An admin has neither cap nor quota.
    admin = user(accounts, "boss", admin=True)
    for _ in range(6):
        submit(queue, admin)


def test_pause_and_ban(queue, accounts):
    uid = user(accounts)
    queue.set_paused(True)
    assert queue.is_paused()
    with pytest.raises(LimitError, match="paused"):
        submit(queue, uid)
    queue.set_paused(False)
    job = submit(queue, uid)
    queue.set_paused(True)
    assert queue.claim("w", 1, T0, 30) == []
    queue.set_paused(False)
    assert [j.id for j in queue.claim("w", 1, T0, 30)] == [job.id]
    accounts.set_banned(uid, True)
    with pytest.raises(LimitError, match="not allowed"):
        submit(queue, uid)


def test_position_and_eta_inputs(queue, accounts):
    a, b = user(accounts, "a"), user(accounts, "b")
    submit(queue, a, cost=20.0)
    mine = submit(queue, b, cost=10.0)
    ahead, cost = queue.position(mine)
    assert (ahead, cost) == (1, 20.0)
    queue.claim("w", 1, T0, 30)
    assert queue.position(mine) == (1, 20.0)  # the running job still counts
    assert queue.seconds_per_cost(default=0.5) == 0.5


def test_outbox_claims_once_and_marks_done(queue, accounts, db):
    uid = user(accounts)
    job = submit(queue, uid, target=DeliveryTarget("telegram", "42", extra={"thread": 7}))
    outbox = Outbox(db)
    [(delivery, seen)] = outbox.claim_open("telegram", "bot1", T0, lease_s=60)
    assert seen.id == job.id and delivery.extra == {"thread": 7}
    assert outbox.claim_open("telegram", "bot2", T0, lease_s=60) == []
    assert outbox.claim_open("discord", "bot1", T0, lease_s=60) == []
    outbox.record_status(delivery.id, "queued", "msg-1", T0)
    assert not outbox.mark_done(delivery.id, "bot2", T0)
    assert outbox.mark_done(delivery.id, "bot1", T0)
    assert outbox.claim_open("telegram", "bot1", T0 + timedelta(hours=1), lease_s=60) == []
    assert outbox.for_job(job.id).status_message_id == "msg-1"


def test_outbox_retry_and_give_up(queue, accounts, db):
    uid = user(accounts)
    job = submit(queue, uid, target=DeliveryTarget("telegram", "42"))
    outbox = Outbox(db)
    [(delivery, _)] = outbox.claim_open("telegram", "bot1", T0, 60)
    outbox.retry_later(delivery.id, "boom", T0, delay_s=10, max_attempts=2)
    assert outbox.claim_open("telegram", "bot1", T0 + timedelta(seconds=5), 60) == []
    [(again, _)] = outbox.claim_open("telegram", "bot2", T0 + timedelta(seconds=11), 60)
    outbox.retry_later(again.id, "boom", T0, delay_s=0, max_attempts=2)
    assert outbox.for_job(job.id).state == "failed"


def test_busy_seconds_counts_a_batch_once_and_skips_idle_gaps():
    from storage.queue.jobs import busy_seconds

    def at(seconds):
        return T0 + timedelta(seconds=seconds)

    batch = [(at(0), at(10)), (at(0), at(10)), (at(2), at(10))]
    assert busy_seconds(batch) == 10.0
    assert busy_seconds([(at(0), at(10)), (at(100), at(105)), (at(104), at(108))]) == 18.0
    assert busy_seconds([]) == 0.0


def test_eta_rate_from_a_batch(queue, accounts):
    uid = user(accounts, "boss", admin=True)
    for _ in range(4):
        submit(queue, uid, cost=30.0)
    batch = queue.claim("w", 4, T0, 600)
    for job in batch:
        queue.complete(job, "w", track(), T0 + timedelta(seconds=12))
    # Four 30 s songs in one 12 s batch: 0.1 s of work per second of audio, not 0.4.
    assert queue.seconds_per_cost() == pytest.approx(0.1)


# ------------------------------------------------------------- the typed job spec and its price

SONG = JobSpec(
    caption="rain",
    lyrics="[verse]\nla",
    duration_s=60.0,
    duration_given=False,
    duration_max_s=240.0,
    bpm=80,
    key="F# minor",
    language="ja",
    time_signature=6,
)


def made(seconds: float) -> NewTrack:
    return NewTrack(
        blob_path="tracks/x.mp3",
        duration_s=seconds,
        seed=1,
        sha256="0" * 64,
        title="T",
        caption="c",
        lyrics="",
        meta=TrackMeta(),
        model=ModelInfo(backend="sketch"),
        plan=Plan(duration_s=seconds, audio_codes=(1,)),
    )


def test_a_spec_round_trips_through_the_queue(queue, accounts, db):
    spec = SONG.model_copy(update={"plan": Plan(caption="c", key="E minor", duration_s=47.5, audio_codes=(1, 2))})
    job = queue.submit(user(accounts), "reroll", spec, 7, T0)
    assert job.spec == spec and queue.get(job.id).spec == spec
    [claimed] = queue.claim("w", 1, T0, 30)
    assert claimed.spec == spec
    with db.connect() as conn:
        stored = conn.execute(select(Job.__table__.c.spec).where(Job.__table__.c.id == job.id)).scalar_one()
    assert stored == spec.stored() and "description" not in stored and stored["plan"]["key"] == "E minor"


def test_a_job_queued_before_the_typed_spec_is_still_claimed(queue, accounts, db):
    # The row exactly as the untyped service wrote it, with a stored plan under the other spellings.
    old = {
        "caption": "rain",
        "description": "rain",
        "lyrics": "",
        "instrumental": False,
        "duration_s": 60,
        "duration_given": False,
        "bpm": 90,
        "key": "C# minor",
        "language": "en",
        "time_signature": 4,
        "plan": {"key": "C# minor", "duration_s": 45.0, "audio_codes": [7, 8]},
    }
    uid = user(accounts)
    with db.begin() as conn:
        conn.execute(
            insert(Job.__table__).values(
                user_id=uid,
                kind="reroll",
                spec=old,
                seed=3,
                status=QUEUED,
                stage=QUEUED,
                progress=0.0,
                attempts=0,
                max_attempts=3,
                run_after=T0,
                cost=45.0,
                vstart=0.0,
                vfinish=45.0,
                created_at=T0,
            )
        )
    [claimed] = queue.claim("w", 1, T0, 30)
    spec = claimed.spec
    assert (spec.caption, spec.key, spec.bpm, spec.duration_s, spec.duration_given) == (
        "rain",
        "C# minor",
        90,
        60,
        False,
    )
    assert spec.plan == Plan(key="C# minor", duration_s=45.0, audio_codes=(7, 8))


def test_a_song_the_planner_times_is_charged_its_bound_then_its_length(queue, accounts):
    uid = user(accounts)
    first = queue.submit(uid, "song", SONG, 7, T0)
    second = queue.submit(uid, "song", SONG, 8, T0)
    bound = fairness.job_cost(240.0, planned=True)
    assert first.cost == bound and (first.vstart, second.vstart) == (0.0, bound)
    [claimed] = queue.claim("w", 1, T0, 30)
    queue.complete(claimed, "w", made(40.0), T0 + timedelta(seconds=12))
    real = fairness.job_cost(40.0, planned=True)
    assert queue.get(first.id).cost == real
    # The song queued behind it moves up by the refund, and the next one chains after that.
    assert queue.get(second.id).vstart == real
    assert queue.submit(uid, "song", SONG, 9, T0).vstart == real + bound
    # The busy time per cost counts what the song really cost.
    assert queue.seconds_per_cost() == pytest.approx(12 / real)


def test_a_song_of_a_given_length_keeps_its_price(queue, accounts):
    given = SONG.model_copy(update={"duration_s": 30.0, "duration_given": True, "duration_max_s": None})
    job = queue.submit(user(accounts), "song", given, 7, T0)
    [claimed] = queue.claim("w", 1, T0, 30)
    queue.complete(claimed, "w", made(30.2), T0)
    assert job.cost == queue.get(job.id).cost == fairness.job_cost(30.0, planned=True)


def test_a_reroll_costs_what_its_stored_track_is_long(queue, accounts):
    uid = user(accounts)
    song = queue.submit(uid, "song", SONG, 7, T0)
    [claimed] = queue.claim("w", 1, T0, 30)
    queue.complete(claimed, "w", made(47.0), T0)
    again = SONG.model_copy(update={"plan": Plan(duration_s=47.0, audio_codes=(1,))})
    reroll = queue.submit(uid, "reroll", again, 8, T0, parent_id=song.id)
    assert reroll.cost == 47.0  # the track's length, and no planning: the plan is reused
    [claimed] = queue.claim("w", 1, T0, 30)
    queue.complete(claimed, "w", made(47.0), T0)
    assert queue.get(reroll.id).cost == 47.0
    unfinished = queue.submit(uid, "song", SONG, 9, T0)
    with pytest.raises(NotFound, match=f"no finished song #{unfinished.id}"):
        queue.submit(uid, "reroll", again, 8, T0, parent_id=unfinished.id)
