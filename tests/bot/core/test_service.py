"""The command layer over a real SQLite queue, with the engine's side played by the queue calls."""

import io

import numpy as np
import pytest
import soundfile as sf

from bot.core.parser import CoverRequest, SongRequest, parse_admin
from bot.core.service import SongService
from storage import fairness
from storage.errors import BadAudio, LimitError, NotFound, UserError
from storage.spec import Plan
from storage.types import QUEUED, DeliveryTarget, NewTrack, UserRef
from tests.helpers import make_settings

ALICE = UserRef("telegram", "1", "Alice")
BOB = UserRef("telegram", "2", "Bob")
ADMIN = UserRef("telegram", "99", "Op")
TARGET = DeliveryTarget("telegram", "chat-1")


@pytest.fixture
def service(tmp_path):
    settings = make_settings(tmp_path, admin_ids="telegram:99", max_source_mb=1, max_duration_s=120)
    return SongService.from_settings(settings)


def wav(seconds: float, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(seconds * 16000)) / 16000
    buffer = io.BytesIO()
    sf.write(buffer, amplitude * np.sin(2 * np.pi * 220 * t), 16000, format="WAV")
    return buffer.getvalue()


def finish(service, job, seed=None, plan=None, made_s=None):
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    assert claimed.id == job.id
    service.queue.complete(
        claimed,
        "engine",
        NewTrack(
            blob_path=f"tracks/{job.id}.mp3",
            duration_s=made_s or job.spec.duration_s,
            seed=seed or job.seed,
            sha256="0" * 64,
            title="Rain",
            caption=job.spec.caption,
            lyrics=job.spec.lyrics,
            meta={"bpm": 90},
            model={"backend": "sketch"},
            plan=plan,
        ),
        service.clock(),
    )


async def test_submit_song_builds_the_spec(service):
    job = await service.submit_song(ALICE, SongRequest("lo-fi rain", lyrics="la", bpm=80, seed=5), TARGET)
    assert job.status == QUEUED and job.kind == "song" and job.seed == 5
    assert job.spec.caption == "lo-fi rain" and job.spec.duration_s == 60 and job.spec.bpm == 80
    assert job.spec.lyrics == "la" and job.spec.duration_given is False and job.spec.duration_max_s == 120
    instrumental = await service.submit_song(BOB, SongRequest("drums", lyrics="ignored", instrumental=True), TARGET)
    assert instrumental.spec.lyrics == "" and 0 <= instrumental.seed < 2**32


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (SongRequest("x" * 501), "under 500 characters"),
        (SongRequest("rain", lyrics="l" * 4001), "lyrics under"),
        (SongRequest("rain", duration_s=9), "between 10 and 120"),
        (SongRequest("rain", duration_s=121), "between 10 and 120"),
        (SongRequest("rain", bpm=301), "bpm must be"),
    ],
)
async def test_song_limits(service, request_, message):
    with pytest.raises(UserError, match=message):
        await service.submit_song(ALICE, request_, TARGET)


async def test_duration_bounds_are_inclusive(service):
    assert (await service.submit_song(ALICE, SongRequest("a", duration_s=10), TARGET)).spec.duration_s == 10
    assert (await service.submit_song(ALICE, SongRequest("a", duration_s=120), TARGET)).spec.duration_s == 120


async def test_reroll_with_own_seed_copies_spec_and_plan(service):
    job = await service.submit_song(ALICE, SongRequest("rain", seed=11), TARGET)
    finish(service, job, plan={"audio_codes": [4, 5]})
    same = await service.reroll(BOB, job.id, 11, TARGET)
    assert same.kind == "reroll" and same.parent_id == job.id and same.seed == 11
    assert same.spec.caption == "rain" and same.spec.plan == Plan(audio_codes=(4, 5))
    assert same.spec.model_copy(update={"plan": None}) == job.spec
    other = await service.reroll(BOB, job.id, None, TARGET)
    assert other.spec.plan == same.spec.plan
    with pytest.raises(NotFound, match="no finished song #999"):
        await service.reroll(ALICE, 999, None, TARGET)


async def test_a_planner_timed_song_is_charged_its_bound_and_its_reroll_its_track(service):
    job = await service.submit_song(ALICE, SongRequest("rain"), TARGET)
    assert job.cost == fairness.job_cost(120.0, planned=True)  # MAX_DURATION_S of these settings
    finish(service, job, plan={"duration": 47.0, "audio_codes": [4, 5]}, made_s=47.0)
    assert service.queue.get(job.id).cost == fairness.job_cost(47.0, planned=True)
    again = await service.reroll(ALICE, job.id, None, TARGET)
    assert again.cost == 47.0 and again.spec.plan == Plan(duration=47.0, audio_codes=(4, 5))
    given = await service.submit_song(BOB, SongRequest("rain", duration_s=30), TARGET)
    assert given.cost == fairness.job_cost(30.0, planned=True) and given.spec.duration_max_s is None


async def test_check_upload_refuses_before_download(service):
    service.check_upload(500_000, "audio/mpeg", "song.mp3")
    with pytest.raises(LimitError, match="up to 1 MB"):
        service.check_upload(5 * 1048576, "audio/mpeg", "song.mp3")
    with pytest.raises(BadAudio, match="not audio"):
        service.check_upload(100, "image/png", "song.mp3")
    with pytest.raises(BadAudio, match="not audio"):
        service.check_upload(100, None, "cat.PNG")
    with pytest.raises(BadAudio, match="empty"):
        service.check_upload(0, "audio/ogg", "voice.ogg")


async def test_cover_validates_and_stores_the_source(service):
    job = await service.submit_cover(ALICE, CoverRequest("jazz trio", 0.7), wav(12.0), "take.wav", TARGET)
    assert job.kind == "cover" and job.spec.strength == 0.7 and job.spec.duration_s == pytest.approx(12.0)
    assert service.blobs.path(job.source_blob).read_bytes()[:4] == b"RIFF"
    note = await service.submit_cover(ALICE, CoverRequest(), wav(8.0), "note.wav", TARGET)  # a voice note
    assert note.spec.duration_s == pytest.approx(8.0) and note.spec.strength == 1.0  # upstream's default
    with pytest.raises(BadAudio, match=r"only 2\.5 seconds long; covers need at least 3 seconds"):
        await service.submit_cover(ALICE, CoverRequest(), wav(2.5), "short.wav", TARGET)
    with pytest.raises(BadAudio, match="silent"):
        await service.submit_cover(ALICE, CoverRequest(), wav(12.0, amplitude=0.0), "quiet.wav", TARGET)
    with pytest.raises(BadAudio, match="not audio"):
        await service.submit_cover(ALICE, CoverRequest(), b"\x89PNG\r\n\x1a\n" + bytes(100), "x.mp3", TARGET)


async def test_cancel_history_queue_and_lyrics(service):
    first = await service.submit_song(ALICE, SongRequest("one", lyrics="hello"), TARGET)
    second = await service.submit_song(ALICE, SongRequest("two"), TARGET)
    assert "position 2" in await service.queue_info(ALICE)
    cancelled = await service.cancel(ALICE, None)
    assert cancelled.id == second.id
    with pytest.raises(NotFound):
        await service.cancel(BOB, first.id)
    finish(service, first)
    assert [track.job_id for track in await service.history(ALICE)] == [first.id]
    assert await service.history(BOB) == []
    assert "hello" in await service.lyrics(first.id)
    with pytest.raises(NotFound):
        await service.cancel(ALICE, None)


async def test_admin_commands(service):
    with pytest.raises(LimitError, match="operators"):
        await service.pause(ALICE)
    await service.submit_song(ALICE, SongRequest("one"), TARGET)
    assert "paused" in await service.pause(ADMIN)
    with pytest.raises(LimitError, match="paused"):
        await service.submit_song(BOB, SongRequest("two"), TARGET)
    await service.resume(ADMIN)
    assert await service.ban(ADMIN, UserRef("telegram", "1")) == "telegram:1 is banned."
    with pytest.raises(LimitError, match="not allowed"):
        await service.submit_song(ALICE, SongRequest("three"), TARGET)
    await service.unban(ADMIN, ALICE)
    assert await service.set_quota(ADMIN, ALICE, 1) == "Daily quota of telegram:1 is now 1."
    with pytest.raises(LimitError, match="1 songs for today"):
        await service.submit_song(ALICE, SongRequest("four"), TARGET)
    assert "Users: 2" in await service.stats(ADMIN)  # Alice and Bob; admin commands add nobody
    with pytest.raises(NotFound):
        await service.ban(ADMIN, UserRef("telegram", "12345"))
    for refused in (service.stats(BOB), service.set_quota(BOB, ALICE, 5), service.unban(BOB, ALICE)):
        with pytest.raises(LimitError, match="operators"):
            await refused


async def test_admin_text_commands_run_the_typed_methods(service):
    await service.submit_song(ALICE, SongRequest("one"), TARGET)
    assert await service.admin(ADMIN, parse_admin("quota telegram:1 2")) == "Daily quota of telegram:1 is now 2."
    assert (await service.admin(ADMIN, parse_admin("BAN telegram:1"))).endswith("is banned.")
    assert await service.admin(ADMIN, parse_admin("quota telegram:1 default")) == (
        "Daily quota of telegram:1 is now the default."
    )
    assert service.accounts.find("telegram", "1").daily_quota is None
    with pytest.raises(LimitError, match="operators"):
        await service.admin(BOB, parse_admin("pause"))


async def test_a_bad_quota_value_answers_one_sentence_and_changes_nothing(service):
    await service.submit_song(ALICE, SongRequest("one"), TARGET)
    await service.set_quota(ADMIN, ALICE, 7)
    for text in ("quota telegram:1 abc", "quota telegram:1 -3", "quota telegram:1 1.5", "quota telegram:1 999999"):
        with pytest.raises(UserError) as refused:
            await service.admin(ADMIN, parse_admin(text))
        value = text.split()[-1]
        assert refused.value.user_message == (
            f"The quota must be a number of songs a day from 0 (no limit) to 100000, or 'default', not {value!r}."
        )
    with pytest.raises(UserError, match=r"^Use /admin pause"):
        parse_admin("quota telegram:1")
    with pytest.raises(UserError, match="platform:id"):
        parse_admin("quota alice 3")
    assert service.accounts.find("telegram", "1").daily_quota == 7


async def test_allowlist(tmp_path):
    service = SongService.from_settings(make_settings(tmp_path, allowed_user_ids="telegram:2", allowed_chat_ids="-100"))
    with pytest.raises(LimitError, match="private"):
        await service.submit_song(ALICE, SongRequest("rain"), TARGET)
    assert (await service.submit_song(BOB, SongRequest("rain"), TARGET)).status == QUEUED
    assert service.chat_allowed("telegram", "-100") and not service.chat_allowed("telegram", "5")


async def test_check_upload_uses_the_declared_length(service):
    service.check_upload(500_000, "audio/ogg", "voice.ogg", duration_s=30.0)
    with pytest.raises(BadAudio, match="too long; I can cover up to 10 minutes"):
        service.check_upload(500_000, "audio/ogg", "voice.ogg", duration_s=2 * 3600.0)
    service.check_upload(500_000, "audio/ogg", "voice.ogg", duration_s=3.0)  # a short voice note is fine
    with pytest.raises(BadAudio, match="only 2 seconds"):
        service.check_upload(500_000, "audio/ogg", "voice.ogg", duration_s=2.0)
