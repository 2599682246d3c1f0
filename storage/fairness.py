"""Start-time fair queueing, as pure functions (the SQL that stores the tags is in `queue.py`).

Each job gets a start tag `vstart = max(clock, user's last finish tag)` and a finish tag
`vfinish = vstart + cost / weight`, where cost is the audio seconds it will produce (times a
factor when the LM plans it). The engine claims the smallest start tag and the clock moves
up to it. A user who floods the queue stacks tags far ahead of the clock, so anyone who
arrives later is interleaved at the clock's current value: they wait behind at most one job
of each busy user, never behind the whole flood. An idle user cannot bank credit: their
next tag starts at the clock, not at their old finish tag.
"""

from __future__ import annotations

from dataclasses import dataclass

# Planning a song with the LM costs GPU time on top of the audio itself.
LM_COST_FACTOR = 1.5


@dataclass(frozen=True)
class Tags:
    """A job's fairness tags."""

    vstart: float
    vfinish: float


def job_cost(duration_s: float, planned: bool = False) -> float:
    """The cost of a job in audio seconds (more when the LM has to plan it)."""
    return duration_s * (LM_COST_FACTOR if planned else 1.0)


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


def jain_index(values: list[float]) -> float:
    """Jain's fairness index: 1.0 when all are equal, 1/n when one takes everything."""
    if not values:
        return 1.0
    total = sum(values)
    squares = sum(v * v for v in values)
    if squares == 0:
        return 1.0
    return total * total / (len(values) * squares)
