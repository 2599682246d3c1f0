"""best=3 on Telegram: real python-telegram-bot against the fake Bot API (sketch engine)."""

from __future__ import annotations

import numpy as np

from storage.queue.outbox import DONE
from tests.bot.telegram.telegram_stack import RunningBot, song_id_and_seed
from tests.bot.telegram.test_telegram_edits import TIMEOUT_S, answer_to, samples, song_of
from tests.fakes.telegram_api import FakeTelegramAPI, FakeUser

ANN = FakeUser(311, "Ann")


async def test_best_of_three_posts_one_song_and_keeps_three(api: FakeTelegramAPI, running: RunningBot) -> None:
    service = running.service
    mark = api.mark()
    api.user_message(ANN, "/song calm piano at dawn duration=20 seed=40 best=3")
    [first] = [await api.wait_for("sendAudio", chat_id=ANN.id, after=mark, timeout=TIMEOUT_S)]
    winner, seed = song_id_and_seed(first)
    delivered = await api.wait_until(lambda: (row := service.outbox.for_job(winner)) is not None and row.state == DONE)
    assert delivered
    assert len(api.calls_of("sendAudio", chat_id=ANN.id, after=mark)) == 1  # exactly one song posted
    [status] = api.calls_of("sendMessage", chat_id=ANN.id, after=mark)  # one status message for the group
    edits = api.edits.get((ANN.id, status.result["message_id"]), [])
    assert any(text.startswith("🏅 Best of 3: ") for text in edits), edits  # one message, edited as the takes go
    assert "🏆 best of 3 · score" in first.params["caption"]

    takes = [service.library.get(song_id) for song_id in (1, 2, 3)]
    assert all(take is not None and take.score is not None for take in takes)
    assert [take.seed for take in takes] == [40, 41, 42]
    best = max(takes, key=lambda take: (take.score.total, -take.job_id))
    assert best.job_id == winner and best.seed == seed and best.score.chosen
    assert f"score {best.score.total:.2f}" in first.params["caption"]

    history = await answer_to(api, ANN, "/history")
    assert "take 1/3" in history and "take 2/3" in history and "take 3/3" in history
    assert history.count("not chosen") == 2 and history.count("chosen 🏆") == 1

    same = await song_of(api, ANN, f"/reroll {winner} {seed}")
    assert song_id_and_seed(same)[1] == seed and np.array_equal(samples(first), samples(same))
    loser = next(take for take in takes if take.job_id != winner)
    other = await song_of(api, ANN, f"/reroll {loser.job_id} {loser.seed}")
    assert song_id_and_seed(other)[1] == loser.seed and "🏆" not in other.params["caption"]


async def test_best_with_takes_is_one_sentence(api: FakeTelegramAPI, running: RunningBot) -> None:
    answer = await answer_to(api, ANN, "/song rain best=2 takes=2")
    assert answer == "Use takes= for several songs or best= for the best of several takes, not both."
    assert await answer_to(api, ANN, "/song rain best=7") == (
        "best must be a whole number from 2 to 4: that many takes, and I post the best."
    )
    assert sum(running.service.queue.counts().values()) == 0
