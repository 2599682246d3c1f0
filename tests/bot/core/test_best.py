"""best=N in the command layer: the option, its sentences, the group it submits, and its texts."""

from datetime import datetime

import pytest

from bot.core import render
from bot.core.parser import CoverRequest, SongRequest, parse_command, parse_cover, parse_song
from bot.core.service import Clip
from storage.contract.errors import LimitError, UserError
from storage.contract.results import ModelInfo, TakeScore, TrackMeta
from storage.contract.types import CANCELLED, QUEUED, TrackView
from storage.queue import best
from tests.bot.core.test_service import ALICE, BOB, TARGET, finish, service, wav

__all__ = ["service"]
BOTH = "Use takes= for several songs or best= for the best of several takes, not both."
RANGE = "best must be a whole number from 2 to 4: that many takes, and I post the best."


def command(text):
    parsed = parse_command(text)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(("text", "expected"), [("/song rain best=2", 2), ("/song rain best=4", 4), ("/song rain", 1)])
def test_best_is_parsed_on_song(text, expected):
    request = parse_song(command(text))
    assert request.best == expected and request.takes == 1 and request.description == "rain"


def test_best_is_parsed_on_cover():
    assert parse_cover(command("/cover jazz best=3")).best == 3
    assert parse_cover(command("/cover ~/a.mp3 jazz best=3"), with_path=True).best == 3


@pytest.mark.parametrize("value", ["1", "5", "0", "two", "３", "2.5", "-2"])
def test_best_outside_two_to_four_is_one_sentence(value):
    with pytest.raises(UserError) as caught:
        parse_song(command(f"/song rain best={value}"))
    assert caught.value.user_message == RANGE
    with pytest.raises(UserError, match=RANGE):
        parse_cover(command(f"/cover jazz best={value}"))


@pytest.mark.parametrize(
    "text", ["/song rain best=3 takes=2", "/song rain takes=1 best=2", "/cover jazz takes=2 best=2"]
)
def test_best_with_takes_is_one_sentence(text):
    parse = parse_cover if text.startswith("/cover") else parse_song
    with pytest.raises(UserError) as caught:
        parse(command(text))
    assert caught.value.user_message == BOTH


async def test_best_submits_n_takes_with_consecutive_seeds_and_one_delivery(service):
    jobs = await service.submit_songs(ALICE, SongRequest("rain", seed=4294967295, best=3), TARGET)
    assert [job.seed for job in jobs] == [4294967295, 0, 1]
    assert all(job.spec.best_of == 3 and job.kind == "song" for job in jobs)
    row = service.outbox.for_job(jobs[0].id)
    assert best.takes_of(row) == tuple(job.id for job in jobs)
    assert service.outbox.for_job(jobs[1].id) is None and service.outbox.for_job(jobs[2].id) is None
    covers = await service.submit_covers(BOB, CoverRequest(best=2), Clip(wav(12), "a.wav"), TARGET)
    assert len(covers) == 2 and all(job.spec.best_of == 2 and job.kind == "cover" for job in covers)


async def test_best_costs_n_songs_against_the_limits(service):
    await service.submit_song(ALICE, SongRequest("one"), TARGET)
    with pytest.raises(LimitError, match="3 takes would put 4 songs in the queue"):
        await service.submit_songs(ALICE, SongRequest("rain", best=3), TARGET)
    assert len(await service.submit_songs(ALICE, SongRequest("rain", best=2), TARGET)) == 2


@pytest.mark.parametrize(("best_", "takes", "sentence"), [(5, 1, RANGE), (0, 1, RANGE), (2, 2, BOTH)])
async def test_the_service_holds_the_bounds_whatever_the_adapter(service, best_, takes, sentence):
    # An adapter that parsed nothing (a Discord option) reaches the same sentences.
    with pytest.raises(UserError) as caught:
        await service.submit_songs(ALICE, SongRequest("rain", best=best_, takes=takes), TARGET)
    assert caught.value.user_message == sentence
    with pytest.raises(UserError, match=sentence):
        await service.submit_covers(ALICE, CoverRequest(best=best_, takes=takes), Clip(wav(12), "a.wav"), TARGET)
    assert sum(service.queue.counts().values()) == 0


async def test_cancelling_a_group_by_its_id_cancels_its_waiting_takes_and_a_later_take_goes_alone(service):
    first, second, third = await service.submit_songs(ALICE, SongRequest("rain", seed=1, best=3), TARGET)
    await service.cancel(ALICE, third.id)  # a take of its own: the others stay
    assert [service.queue.get(job.id).status for job in (first, second, third)] == [QUEUED, QUEUED, CANCELLED]
    await service.cancel(ALICE, first.id)  # the group's id: every take still waiting goes
    assert {service.queue.get(job.id).status for job in (first, second, third)} == {CANCELLED}


async def test_best_without_a_seed_draws_one_and_counts_on_from_it(service):
    drawn = await service.submit_songs(ALICE, SongRequest("rain", best=3), TARGET)
    first = drawn[0].seed
    assert [job.seed for job in drawn] == [first, (first + 1) % 2**32, (first + 2) % 2**32]


async def test_a_reroll_of_a_take_is_an_ordinary_song_with_the_same_seed(service):
    jobs = await service.submit_songs(ALICE, SongRequest("rain", seed=5, best=2), TARGET)
    finish(service, jobs[0])
    again = await service.reroll(ALICE, jobs[0].id, 5, TARGET)
    assert again.spec.best_of == 1 and again.seed == 5
    assert again.spec.model_copy(update={"best_of": 2}) == jobs[0].spec
    assert service.outbox.for_job(again.id) is not None and best.takes_of(service.outbox.for_job(again.id)) is None


def view(score):
    return TrackView(
        job_id=7, blob_path="t.mp3", format="mp3", duration_s=30.0, seed=3, sha256="0" * 64, title="Rain",
        caption="rain", lyrics="", meta=TrackMeta(bpm=90), plan=None, model=ModelInfo(), notice=None,
        created_at=datetime(2026, 12, 1), score=score,
    )  # fmt: skip


def test_the_chosen_take_says_so_and_the_others_are_marked():
    chosen = view(TakeScore(total=0.734, best_of=3, take=2, chosen=True))
    other = view(TakeScore(total=0.5, best_of=3, take=1, chosen=False))
    assert render.best_line(chosen) == "🏆 best of 3 · score 0.73"
    assert "🏆 best of 3 · score 0.73" in render.result_caption(chosen)
    assert render.best_line(other) == "" and "🏆" not in render.result_caption(other)
    assert render.take_text(chosen) == "take 2/3, chosen 🏆" and render.take_text(other) == "take 1/3, not chosen"
    assert render.take_text(view(TakeScore(total=0.5, best_of=3))) == "one of best of 3, waiting for the others"
    assert render.take_text(view(None)) == "" and "take" not in render.history_text([view(None)])
    assert "take 1/3, not chosen" in render.history_text([other])


def test_the_group_status_counts_the_takes():
    assert render.best_status_text(3, 1, "🎶 #8 generating… 40%") == (
        "🏅 Best of 3: 1 of 3 takes made\n🎶 #8 generating… 40%"
    )
    assert render.best_status_text(3, 3, None) == "🏅 Best of 3: 3 of 3 takes made, choosing the best…"


def test_help_says_what_best_does_and_what_it_costs():
    text = render.help_text(3, 30, 10, 600, 20, 7)
    assert "best=3" in text and "posts only the best" in text and "counts as a song against your limits" in text


def test_the_console_help_says_it_too(tmp_path):
    from bot.console.repl import console_help
    from tests.helpers import make_settings

    assert "best=3 on /song or /cover makes 3 takes" in console_help(make_settings(tmp_path))
