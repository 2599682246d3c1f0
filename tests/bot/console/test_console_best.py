"""best=3 end to end through `python -m songbot chat` (real processes, real queue, sketch backend)."""

import numpy as np
import soundfile as sf

from storage.db import make_engine
from storage.queue.library import Library
from tests.bot.console.test_console_e2e import chat, results


def test_best_of_three_posts_one_song_keeps_three_and_the_winner_rerolls_exactly(tmp_path):
    out = chat(tmp_path, "/song lo-fi rain at night duration=10 seed=5 bpm=90 best=3\n")
    [(winner, seed, path)] = results(out)  # exactly one song is posted
    assert out.count("🏆 best of 3 · score") == 1 and out.count("🏅 Best of 3") >= 1
    library = Library(make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}"))
    takes = [library.get(song_id) for song_id in (1, 2, 3)]
    assert [take.seed for take in takes] == [5, 6, 7] and all(take is not None for take in takes)
    scores = [take.score for take in takes]
    assert all(score is not None and score.best_of == 3 for score in scores)
    best = max(takes, key=lambda take: (take.score.total, -take.job_id))
    assert best.job_id == winner and best.seed == seed and best.score.chosen
    assert sum(score.chosen for score in scores) == 1 and [score.take for score in scores] == [1, 2, 3]
    assert f"score {best.score.total:.2f}" in out

    history = chat(tmp_path, "/history\n")
    for take in takes:
        mark = "chosen 🏆" if take.job_id == winner else "not chosen"
        assert f"take {take.score.take}/3, {mark}" in history

    loser = next(take for take in takes if take.job_id != winner)
    again = chat(tmp_path, f"/reroll {winner} {seed}\n/reroll {loser.job_id} {loser.seed}\n")
    rerolled = sorted(results(again))
    assert len(rerolled) == 2 and "🏆" not in again  # each is posted like any song
    first, _ = sf.read(str(path), dtype="float32", always_2d=True)
    same, _ = sf.read(str(rerolled[0][2]), dtype="float32", always_2d=True)
    assert rerolled[0][1] == seed and np.array_equal(first, same), "the winner re-rolls bit-identically"
    assert rerolled[1][1] == loser.seed
