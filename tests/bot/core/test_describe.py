"""`/describe` in the command layer: the upload checks, the message's fields, and "Make one like this"."""

import asyncio

import pytest

from bot.core import parser
from bot.core.describe import Described, clip_words, describe_text, song_line
from bot.core.service import SongService
from storage.contract.errors import BadAudio, LimitError, NotFound
from storage.contract.spec import Description, JobSpec, Plan
from storage.contract.types import DESCRIBE, QUEUED, DeliveryTarget, UserRef
from storage.queue import fairness
from tests.bot.core.test_service import finish, wav
from tests.helpers import make_settings

ALICE = UserRef("telegram", "1", "Alice")
BOB = UserRef("telegram", "2", "Bob")
TARGET = DeliveryTarget("telegram", "chat-1")
LYRICS = "[Verse]\nneon lights\n\n[Chorus]\nwe run = we fly"
READING = Plan(
    caption="A bright   synth-pop anthem with a=b punchy drums",
    lyrics=LYRICS,
    bpm=124,
    key="B♭ major",
    time_signature=4,
    duration_s=187.4,
    language="en",
)


@pytest.fixture
def service(tmp_path):
    settings = make_settings(tmp_path, max_source_mb=1, max_duration_s=120, max_pending_per_user=2)
    return SongService.from_settings(settings)


def described(service: SongService, job_id: int, plan: Plan = READING, backend: str = "acestep") -> Described:
    """Finish `describe` job `job_id` as the engine does, and read it back as the delivery loop does."""
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    assert claimed.id == job_id and claimed.kind == DESCRIBE
    service.queue.complete_result(claimed, "engine", Description(plan=plan, backend=backend), service.clock())
    result = service.description(service.queue.get(job_id))
    assert result is not None
    return result


def test_a_recording_is_checked_like_a_cover_and_priced_as_a_cheap_job(service: SongService) -> None:
    job = asyncio.run(service.submit_describe(ALICE, _clip(wav(8.0)), TARGET))
    assert job.kind == DESCRIBE and job.status == QUEUED and job.source_blob
    assert job.cost == pytest.approx(8.0 * fairness.DESCRIBE_COST_FACTOR)
    assert job.cost < fairness.price("cover", JobSpec(duration_s=8.0))
    with pytest.raises(BadAudio, match="only 1 second long; recordings to describe need at least 3 seconds"):
        asyncio.run(service.submit_describe(ALICE, _clip(wav(1.0)), TARGET))
    with pytest.raises(BadAudio, match="not audio"):
        asyncio.run(service.submit_describe(ALICE, _clip(b"\x89PNG\r\n\x1a\n" + bytes(64), "cat.png"), TARGET))
    with pytest.raises(LimitError, match="MB"):
        asyncio.run(service.submit_describe(ALICE, _clip(bytes(2 * 1024 * 1024)), TARGET))


def test_the_message_shows_exactly_what_the_button_queues(service: SongService) -> None:
    job = asyncio.run(service.submit_describe(ALICE, _clip(wav(8.0)), TARGET))
    result = described(service, job.id)
    like = result.like
    assert like.caption == "A bright synth-pop anthem with a b punchy drums"
    assert (like.bpm, like.key, like.time_signature, like.language) == (124, "Bb major", 4, "en")
    assert like.duration_s == 120  # 3:07 of recording; this bot makes songs up to 120 s
    text = describe_text(result)
    assert f"🔎 #{job.id}: what I heard (ACE-Step's planner)" in text
    assert "BPM: 124 · Key: Bb major · Time signature: 4/4" in text
    assert "Duration: 3:07 · Language: en" in text and "would be 2:00 long" in text
    assert text.endswith("Lyrics:\n" + LYRICS)

    song = asyncio.run(service.make_like(BOB, job.id, TARGET))  # the user who presses it, not the describer
    assert song.kind == "song" and service.queue.get(song.id).user_id != job.user_id
    spec = song.spec
    assert (spec.caption, spec.lyrics, spec.bpm, spec.key) == (like.caption, LYRICS, 124, "Bb major")
    assert (spec.time_signature, spec.language, spec.duration_s, spec.duration_given) == (4, "en", 120, True)
    assert not spec.instrumental


def test_the_console_line_parses_back_into_the_same_fields(service: SongService) -> None:
    job = asyncio.run(service.submit_describe(ALICE, _clip(wav(8.0)), TARGET))
    like = described(service, job.id).like
    line = song_line(like)
    assert line.splitlines()[0].endswith(" \\") and "" not in line.splitlines()
    request = parser.parse_song(parser.parse_command(line.replace(" \\\n", "\n", 1)))
    assert request == parser.SongRequest(
        description=like.caption,
        lyrics="[Verse]\nneon lights\n[Chorus]\nwe run = we fly",  # blank lines would end the command
        duration_s=120,
        bpm=124,
        key="Bb major",
        language="en",
        time_signature=4,
    )


def test_junk_and_the_lms_own_spellings_are_left_to_the_model_not_refused(service: SongService) -> None:
    junk = Plan(caption="", lyrics="[Instrumental]", bpm=7, key="H dorian", time_signature=5, language="unknown")
    job = asyncio.run(service.submit_describe(ALICE, _clip(wav(4.0)), TARGET))
    result = described(service, job.id, junk.model_copy(update={"duration_s": 4.0}), backend="sketch")
    like = result.like
    assert like == like.__class__("a song like the recording", "", None, None, None, 10, None)
    assert "sketch backend's guess" in describe_text(result)
    assert "Lyrics: none heard (instrumental)." in describe_text(result)
    song = asyncio.run(service.make_like(ALICE, job.id, TARGET))
    assert song.spec.instrumental and song.spec.duration_s == 10 and song.spec.bpm is None


def test_make_one_like_this_counts_against_the_presser_s_limits(service: SongService) -> None:
    job = asyncio.run(service.submit_describe(ALICE, _clip(wav(8.0)), TARGET))
    described(service, job.id)
    asyncio.run(service.make_like(BOB, job.id, TARGET))
    asyncio.run(service.make_like(BOB, job.id, TARGET))
    with pytest.raises(LimitError):
        asyncio.run(service.make_like(BOB, job.id, TARGET))


def test_make_one_like_this_needs_a_finished_description(service: SongService) -> None:
    job = asyncio.run(service.submit_describe(ALICE, _clip(wav(8.0)), TARGET))
    with pytest.raises(NotFound, match=f"no finished description #{job.id}"):
        asyncio.run(service.make_like(ALICE, job.id, TARGET))  # still queued
    asyncio.run(service.cancel(ALICE, job.id))
    song = asyncio.run(service.submit_song(BOB, parser.SongRequest("rain"), TARGET))
    finish(service, song)
    with pytest.raises(NotFound):
        asyncio.run(service.make_like(ALICE, song.id, TARGET))  # a song is not a description
    with pytest.raises(NotFound):
        asyncio.run(service.make_like(ALICE, 0, TARGET))


def test_clip_words_cuts_after_a_whole_word() -> None:
    assert clip_words("one two three", 9) == "one two"
    assert clip_words("one two three", 13) == "one two three"
    assert clip_words("onetwothree", 5) == "onetw"


def _clip(data: bytes, name: str = "take.wav"):
    from bot.core.service import Clip

    return Clip(data, name)


def test_help_lists_describe_everywhere(service: SongService) -> None:
    from bot.console.repl import console_help

    assert "/describe as a reply to a recording" in service.help_text()
    assert "/describe <file path>" in console_help(service.settings)
