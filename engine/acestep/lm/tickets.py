"""One request on the fast path, and the host's side of its steps.

A :class:`Ticket` is what :meth:`engine.acestep.lm.fast.FastDecoder.submit` hands back. In the
code phase a finished request takes its row's tokens at once (:func:`take_codes`). In the
metadata phase the host writes each row's :class:`Rule` into a table before a step
(:func:`fill_rules`) and, one step behind, advances each request by the token its row took
(:func:`take_tokens`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from engine.acestep.lm.constraints import Rule
from engine.acestep.lm.decode import DecodeJob

DEAD = -1  # rule mode of a row that takes no token this step


@dataclass
class Ticket:
    """One submitted request: its job, and an event set when it is done."""

    job: DecodeJob
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    row: int = -1
    count: int = 0  # tokens taken so far (the device's count, mirrored)
    pos: tuple[int, int] = (0, 0)
    finished: bool = False
    rule: Rule | None = None

    @property
    def end(self) -> int:
        """Code phase: the number of tokens this request takes in all (codes, then end-of-sequence)."""
        target = self.job.constraint.spec.target_codes or 0
        return min(target + 1, self.job.max_new_tokens)


def take_codes(t: Ticket, tokens: list[int]) -> None:
    """Code phase: a finished request takes its row's tokens (codes, then end-of-sequence)."""
    t.finished = True
    for token in tokens[: t.end]:
        t.job.constraint.advance(token)
        t.job.tokens.append(token)


def fill_rules(host: Any, rows: list[Ticket | None], b: int, pad: int, bank_keys: dict[str, int]) -> None:
    """Write the rule of each of the first ``b`` rows into the host table (mode, token, bank index, live, ids...)."""
    host[:b] = 0
    host[:b, 0] = DEAD
    host[:b, 1] = pad
    host[:b, 2] = bank_keys["text"]
    host[:b, 4:] = -1
    for i, t in enumerate(rows[:b]):
        if t is None or t.finished:
            if t is not None:
                t.rule = None
            continue
        rule = t.job.constraint.rule()
        t.rule = rule
        host[i, 0], host[i, 1], host[i, 3] = rule.mode, rule.token, 1
        if rule.ban:
            host[i, 2] = bank_keys[rule.ban]
        if rule.ids:
            host[i, 4 : 4 + len(rule.ids)] = rule.ids


def take_tokens(taken: list[tuple[Ticket, Rule]], last: Any) -> None:
    """Advance each request by the token its row took under ``rule``; mark it finished when it is done."""
    for t, rule in taken:
        token = int(last[t.row])
        t.job.constraint.advance(token, rule)
        t.job.tokens.append(token)
        if t.job.constraint.done or len(t.job.tokens) >= t.job.max_new_tokens:
            t.finished = True
