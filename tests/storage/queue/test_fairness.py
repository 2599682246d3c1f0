import pytest

from storage.contract.spec import JobSpec, Plan
from storage.queue import fairness
from storage.queue.fairness import Tags, advance_clock, jain_index, job_cost, refund, tags_for


def test_first_job_starts_at_the_clock():
    assert tags_for(clock=5.0, last_vfinish=0.0, cost=30.0, weight=1.0) == Tags(5.0, 35.0)


def test_a_users_jobs_chain_after_each_other():
    first = tags_for(0.0, 0.0, 30.0, 1.0)
    second = tags_for(0.0, first.vfinish, 30.0, 1.0)
    assert second.vstart == first.vfinish == 30.0


def test_weight_shortens_the_tag():
    assert tags_for(0.0, 0.0, 30.0, 2.0).vfinish == 15.0
    with pytest.raises(ValueError):
        tags_for(0.0, 0.0, 30.0, 0.0)


def test_idle_user_cannot_bank_credit():
    # The user's last tag is long past; the new job starts at the clock, not back in time.
    assert tags_for(clock=500.0, last_vfinish=10.0, cost=10.0, weight=1.0).vstart == 500.0


def test_clock_never_moves_backwards():
    assert advance_clock(10.0, [3.0, 7.0]) == 10.0
    assert advance_clock(10.0, [12.0, 11.0]) == 12.0
    assert advance_clock(10.0, []) == 10.0


def test_refund_only_for_the_last_job():
    cancelled = Tags(40.0, 70.0)
    assert refund(clock=20.0, last_vfinish=70.0, cancelled=cancelled, was_last=True) == 40.0
    assert refund(clock=50.0, last_vfinish=70.0, cancelled=cancelled, was_last=True) == 50.0
    assert refund(clock=20.0, last_vfinish=100.0, cancelled=cancelled, was_last=False) == 100.0


def test_planned_jobs_cost_more():
    assert job_cost(60.0) == 60.0
    assert job_cost(60.0, planned=True) == 60.0 * fairness.LM_COST_FACTOR


def test_jain_index_bounds():
    assert jain_index([5.0, 5.0, 5.0]) == pytest.approx(1.0)
    assert jain_index([9.0, 0.0, 0.0]) == pytest.approx(1 / 3)
    assert jain_index([]) == 1.0


def test_flood_does_not_delay_a_newcomer():
    # A floods 10 jobs at clock 0; B arrives later with one job: B's start tag is the clock,
    # so at most one of A's jobs (the one in service) is ahead of B.
    last = 0.0
    a_tags = []
    for _ in range(10):
        tag = tags_for(0.0, last, 10.0, 1.0)
        a_tags.append(tag)
        last = tag.vfinish
    clock = advance_clock(0.0, [a_tags[0].vstart])
    b = tags_for(clock, 0.0, 10.0, 1.0)
    ahead = [t for t in a_tags[1:] if t.vstart < b.vstart]
    assert ahead == []


def test_a_song_the_planner_times_is_charged_its_upper_bound():
    chosen_by_planner = JobSpec(duration_s=60, duration_given=False, duration_max_s=240)
    assert fairness.price("song", chosen_by_planner) == job_cost(240.0, planned=True)
    assert fairness.final_price("song", chosen_by_planner, made_s=47.0) == job_cost(47.0, planned=True)


def test_a_given_length_and_a_cover_are_priced_exactly():
    given = JobSpec(duration_s=30)
    assert fairness.price("song", given) == job_cost(30.0, planned=True)
    assert fairness.final_price("song", given, made_s=29.9) is None
    cover = JobSpec(duration_s=12.5)
    assert fairness.price("cover", cover) == 12.5 and fairness.final_price("cover", cover, 12.5) is None
    replanned = JobSpec(duration_s=60, duration_given=False, duration_max_s=240, plan=Plan(duration_s=45))
    assert fairness.price("song", replanned) == 60.0  # a stored plan: not planned again, its length fixed


def test_correct_refunds_the_job_and_moves_the_chain_behind_it():
    job, later = Tags(0.0, 360.0), [Tags(360.0, 450.0), Tags(450.0, 540.0)]
    fixed, moved = fairness.correct(clock=0.0, job=job, charged=360.0, cost=90.0, later=later)
    assert fixed == Tags(0.0, 90.0)
    assert moved == [Tags(90.0, 180.0), Tags(180.0, 270.0)]


def test_correct_never_moves_a_job_before_the_clock():
    fixed, moved = fairness.correct(
        clock=300.0, job=Tags(0.0, 360.0), charged=360.0, cost=90.0, later=[Tags(360.0, 450.0), Tags(450.0, 540.0)]
    )
    assert fixed == Tags(0.0, 90.0) and moved == [Tags(300.0, 390.0), Tags(390.0, 480.0)]


def test_correct_keeps_the_chain_when_the_job_cost_more_or_the_same():
    later = [Tags(100.0, 130.0)]
    assert fairness.correct(0.0, Tags(0.0, 100.0), charged=100.0, cost=100.0, later=later) == (Tags(0.0, 100.0), later)
    fixed, moved = fairness.correct(0.0, Tags(0.0, 50.0), charged=100.0, cost=120.0, later=later)
    assert fixed == Tags(0.0, 60.0) and moved == later


def test_correct_keeps_the_users_weight():
    # Weight 2: the tag is half the cost; the correction keeps that ratio.
    fixed, _ = fairness.correct(0.0, Tags(10.0, 190.0), charged=360.0, cost=90.0, later=[])
    assert fixed == Tags(10.0, 55.0)
