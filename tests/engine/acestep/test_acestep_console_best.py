"""best=2 through `python -m songbot chat` with the real ACE-Step engine on the tiny set (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from engine.acestep.lm.model import load_lm
from engine.acestep.lm.score import Scorer, plan_metadata
from storage.db import make_engine
from storage.queue.library import Library
from tests.engine.acestep.test_acestep_console_e2e import RESULT, chat


def test_best_of_two_posts_the_higher_official_score_and_it_rerolls_exactly(tmp_path: Path, tiny_set: Path) -> None:
    out = chat(tmp_path, tiny_set, "/song lo-fi rain at night duration=10 seed=5 best=2\n")
    [(winner, seed, path)] = RESULT.findall(out)
    assert out.count("🏆 best of 2 · score") == 1
    library = Library(make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}"))
    takes = [library.get(song_id) for song_id in (1, 2)]
    assert all(take is not None and take.plan is not None and take.score is not None for take in takes)
    scorer = Scorer(load_lm(tiny_set / "acestep-5Hz-lm-0.6B"))
    for take in takes:  # each stored score is the official computation on that take's own codes
        again = scorer.score(take.plan.audio_codes, take.lyrics, plan_metadata(take.plan, take.caption))
        assert take.score.conditions == again.conditions and take.score.total == again.total
    best = max(takes, key=lambda take: (take.score.total, -take.job_id))
    assert best.job_id == int(winner) and best.seed == int(seed) and best.score.chosen
    rerolled = chat(tmp_path, tiny_set, f"/reroll {winner} {seed}\n")
    [(_, same_seed, same_path)] = RESULT.findall(rerolled)
    first, _ = sf.read(path, dtype="float32", always_2d=True)
    same, _ = sf.read(same_path, dtype="float32", always_2d=True)
    assert same_seed == seed and np.array_equal(first, same)
