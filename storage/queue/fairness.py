"""Start-time fair queueing, as pure functions (the SQL that stores the tags is in `queue.py`).

Each job gets a start tag `vstart = max(clock, user's last finish tag)` and a finish tag
`vfinish = vstart + cost / weight`, where cost is the audio seconds it will produce (times a
factor when the LM plans it). The engine claims the smallest start tag and the clock moves
up to it. A user who floods the queue stacks tags far ahead of the clock, so anyone who
arrives later is interleaved at the clock's current value: they wait behind at most one job
of each busy user, never behind the whole flood. An idle user cannot bank credit: their
next tag starts at the clock, not at their old finish tag.

Prices: a song whose length the planner chooses is charged the longest it may be, and corrected
to its real length when it is done (`final_price`, `correct`); a re-roll costs what its stored
track is long.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.contract.spec import JobSpec

# Planning a song with the LM costs GPU time on top of the audio itself.
LM_COST_FACTOR = 1.5
# Describing a recording (`describe`) runs the VAE encoder and the LM's reading, no DiT and no VAE decode:
# a fraction of what making that much audio costs.
DESCRIBE_COST_FACTOR = 0.25
# What a job that makes no audio is charged, in audio seconds: one pass of the model, not a song.
TRACKLESS_COSTS = {"timing": 2.0}


@dataclass(frozen=True)
class Tags:
    """A job's fairness tags."""

    vstart: float
    vfinish: float


def job_cost(duration_s: float, planned: bool = False) -> float:
    """The cost of a job in audio seconds (more when the LM has to plan it)."""
    return duration_s * (LM_COST_FACTOR if planned else 1.0)


def price(kind: str, spec: JobSpec) -> float:
    """What a new song or cover is charged when it is queued (a re-roll: `job_cost` of its track).

    A song is planned by the LM unless it follows a stored plan. While the planner will choose its
    length, the song is charged the longest it may be: an upper bound, corrected by `final_price`.
    """
    if kind == "describe":
        return spec.duration_s * DESCRIBE_COST_FACTOR
    if kind in TRACKLESS_COSTS:
        return TRACKLESS_COSTS[kind]
    planned = kind == "song" and spec.plan is None
    seconds = spec.duration_s
    if planned and spec.length_up_to_the_planner and spec.duration_max_s is not None:
        seconds = spec.duration_max_s
    return job_cost(seconds, planned=planned)


def final_price(kind: str, spec: JobSpec, made_s: float) -> float | None:
    """The cost of a finished job whose length the planner chose (`made_s`), or None if its price was exact."""
    if kind != "song" or not spec.length_up_to_the_planner:
        return None
    return job_cost(made_s, planned=True)


def tags_for(clock: float, last_vfinish: float, cost: float, weight: float) -> Tags:
    """Tags for a new job of a user whose last finish tag is `last_vfinish`."""
    if weight <= 0:
        raise ValueError("weight must be positive")
    vstart = max(clock, last_vfinish)
    return Tags(vstart=vstart, vfinish=vstart + cost / weight)


def advance_clock(clock: float, claimed_vstarts: list[float]) -> float:
    """The clock after claiming jobs with these start tags: it never moves backwards."""
    return max([clock, *claimed_vstarts])


def refund(clock: float, last_vfinish: float, cancelled: Tags, was_last: bool) -> float:
    """A user's finish tag after one of their queued jobs is cancelled.

    Only the user's last queued job can be refunded exactly: its slot is the tail of their
    chain. An earlier job leaves a gap that the later tags already account for, so the
    chain stays as it is (the over-charge is at most that one job).
    """
    if not was_last:
        return last_vfinish
    return max(clock, cancelled.vstart)


def correct(clock: float, job: Tags, charged: float, cost: float, later: list[Tags]) -> tuple[Tags, list[Tags]]:
    """Tags after a job charged `charged` turned out to cost `cost`.

    The job's finish tag moves to match its real cost. When it cost less, the same user's queued jobs
    chained behind it (`later`, in tag order) move forward by the refund, but never before the clock
    (a correction must not give anyone credit they could not have had by queueing now) and never
    into each other.
    """
    if charged <= 0 or cost == charged:
        return job, later
    fixed = Tags(job.vstart, job.vstart + (job.vfinish - job.vstart) * cost / charged)
    refund = job.vfinish - fixed.vfinish
    if refund <= 0:
        return fixed, later
    moved: list[Tags] = []
    for tags in later:
        # A job held back by the clock still starts after the one before it in the chain.
        vstart = max(clock, tags.vstart - refund, moved[-1].vfinish if moved else clock)
        moved.append(Tags(vstart, vstart + (tags.vfinish - tags.vstart)))
    return fixed, moved


def jain_index(values: list[float]) -> float:
    """Jain's fairness index: 1.0 when all are equal, 1/n when one takes everything."""
    if not values:
        return 1.0
    total = sum(values)
    squares = sum(v * v for v in values)
    if squares == 0:
        return 1.0
    return total * total / (len(values) * squares)
