"""Takes, repaints, extends and clips in the command layer, over a real SQLite queue."""

import pytest

from bot.core.parser import CoverRequest, ExtendRequest, ParsedCommand, RepaintRequest, SongRequest, parse_extend
from bot.core.render import history_text
from bot.core.service import Clip
from storage.contract.errors import BadAudio, LimitError, NotFound, UserError
from storage.contract.spec import Edit
from tests.bot.core.test_service import ADMIN, ALICE, BOB, TARGET, finish, service, wav

__all__ = ["service"]


async def test_takes_are_songs_of_their_own(service):
    jobs = await service.submit_songs(ALICE, SongRequest("rain", seed=4294967295, takes=3), TARGET)
    assert [job.seed for job in jobs] == [4294967295, 0, 1]
    assert len({job.id for job in jobs}) == 3 and all(job.kind == "song" for job in jobs)
    targets = [service.outbox.for_job(job.id) for job in jobs]
    assert all(t is not None and t.chat_id == "chat-1" for t in targets)
    assert jobs[0].vstart < jobs[1].vstart < jobs[2].vstart  # each take has its own fairness tags
    with pytest.raises(LimitError, match="ask for fewer takes"):  # the pending cap counts every take
        await service.submit_songs(BOB, SongRequest("rain", takes=4), TARGET)
    assert service.queue.pending_of(service.accounts.find("telegram", "2").id) == []  # all or none
    covers = await service.submit_covers(BOB, CoverRequest(takes=2), Clip(wav(12), "a.wav"), TARGET)
    assert len(covers) == 2 and covers[0].source_blob == covers[1].source_blob


@pytest.mark.parametrize("takes", [0, 9])
async def test_takes_outside_the_bound_are_refused_whatever_the_adapter(service, takes):
    # An adapter that parsed nothing (a Discord option outside its declared range) reaches the same bound.
    with pytest.raises(UserError, match=r"^takes must be between 1 and 4\.$"):
        await service.submit_songs(ALICE, SongRequest("rain", takes=takes), TARGET)
    with pytest.raises(UserError, match=r"^takes must be between 1 and 4\.$"):
        await service.submit_covers(ALICE, CoverRequest(takes=takes), Clip(wav(12), "a.wav"), TARGET)
    assert sum(service.queue.counts().values()) == 0
    assert not any(service.blobs.root.rglob("uploads/*"))  # refused before the upload was kept


@pytest.mark.parametrize("seed", [-1, 2**32])
async def test_a_seed_outside_uint32_is_refused_not_wrapped(service, seed):
    with pytest.raises(UserError, match=r"^seed must be between 0 and 4294967295\.$"):
        await service.submit_songs(ALICE, SongRequest("rain", seed=seed), TARGET)


async def test_repaint_and_extend_name_their_song_and_repeat_on_reroll(service):
    job = await service.submit_song(ALICE, SongRequest("rain", duration_s=30, seed=3), TARGET)
    finish(service, job)
    repaint = await service.repaint(ALICE, RepaintRequest(job.id, 8.0, 12.0, "a solo"), TARGET)
    assert repaint.kind == "repaint" and repaint.parent_id == job.id and repaint.seed != 3
    assert repaint.spec.edit == Edit(task="repaint", song_id=job.id, start_s=8.0, end_s=12.0)
    assert repaint.spec.caption == "a solo" and repaint.spec.duration_s == 30 and repaint.spec.bpm == 90
    finish(service, repaint)
    again = await service.reroll(ALICE, repaint.id, None, TARGET)  # the same repaint of the same song
    assert again.spec.edit == repaint.spec.edit and again.parent_id == repaint.id and again.seed != repaint.seed
    finish(service, again)
    extend = await service.extend(ALICE, ExtendRequest(job.id, 10, ""), TARGET)
    assert extend.kind == "extend" and extend.spec.duration_s == 40 and extend.spec.caption == "rain"
    assert extend.spec.edit == Edit(task="extend", song_id=job.id, start_s=30.0, end_s=40.0)
    finish(service, extend)
    shown = history_text(await service.history(ALICE))
    assert "repaint of #1 (0:08-0:12)" in shown and "#1 extended by 0:10" in shown
    assert f"re-roll of #{repaint.id}, repaint of #1 (0:08-0:12)" in shown


@pytest.mark.parametrize(
    ("who", "request_", "message"),
    [
        (ALICE, RepaintRequest(1, 25.0, 35.0), "must lie within 0:00-0:30"),
        (ALICE, RepaintRequest(1, 30.0, 31.0), "must lie within 0:00-0:30"),
        (ALICE, RepaintRequest(1, 0.0, 30.0), "whole of song #1"),
        (ALICE, RepaintRequest(1, 0.3, 29.8), "whole of song #1"),
        (ALICE, RepaintRequest(2, 1.0, 2.0), "no finished song #2"),
        (BOB, RepaintRequest(1, 1.0, 2.0), "Song #1 is not yours"),
        (ALICE, ExtendRequest(1, 91), "can grow at most 90 seconds"),
        (BOB, ExtendRequest(1, 5), "Song #1 is not yours"),
        (ALICE, ExtendRequest(7, 5), "no finished song #7"),
    ],
)
async def test_bad_edits_are_one_sentence(service, who, request_, message):
    job = await service.submit_song(ALICE, SongRequest("rain", duration_s=30), TARGET)
    finish(service, job)
    edit = service.repaint if isinstance(request_, RepaintRequest) else service.extend
    with pytest.raises((UserError, NotFound), match=message) as raised:
        await edit(who, request_, TARGET)
    assert raised.value.user_message.count(". ") == 0
    assert len(service.queue.pending_of(1)) == 0


@pytest.mark.parametrize("amount", ["601", "600", "91", "999999999999999999"])
async def test_an_extend_past_the_longest_song_names_the_room_left(service, amount):
    """`/extend 1 601` says how far the song can grow, as `/extend 1 600` does, not the usage."""
    job = await service.submit_song(ALICE, SongRequest("rain", duration_s=30), TARGET)
    finish(service, job)
    request = parse_extend(ParsedCommand("extend", f"{job.id} {amount}", ""))
    with pytest.raises(LimitError, match="so it can grow at most 90 seconds"):
        await service.extend(ALICE, request, TARGET)


async def test_an_admin_may_change_anyones_song(service):
    job = await service.submit_song(ALICE, SongRequest("rain", duration_s=30), TARGET)
    finish(service, job)
    assert (await service.repaint(ADMIN, RepaintRequest(job.id, 1.0, 2.0), TARGET)).kind == "repaint"


async def test_a_clip_is_checked_like_a_cover(service):
    jobs = await service.submit_songs(ALICE, SongRequest("jazz"), TARGET, Clip(wav(12), "hum.wav"))
    assert jobs[0].spec.like and jobs[0].source_blob and service.blobs.exists(jobs[0].source_blob)
    service.blobs.delete(jobs[0].source_blob)
    finish(service, jobs[0])
    with pytest.raises(NotFound, match="send the clip again with /song"):
        await service.reroll(ALICE, jobs[0].id, None, TARGET)
    with pytest.raises(BadAudio, match="clips need at least 10 seconds"):
        await service.submit_songs(ALICE, SongRequest("jazz"), TARGET, Clip(wav(3), "short.wav"))
    with pytest.raises(BadAudio, match="not audio"):
        await service.submit_songs(ALICE, SongRequest("jazz"), TARGET, Clip(b"\x89PNG....", "cat.png"))
    with pytest.raises(LimitError, match="MB"):
        await service.submit_songs(ALICE, SongRequest("jazz"), TARGET, Clip(b"0" * 2_000_000, "big.wav"))
