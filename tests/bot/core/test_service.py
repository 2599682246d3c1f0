"""The command layer over a real SQLite queue, with the engine's side played by the queue calls."""

import asyncio
import io
import stat

import numpy as np
import pytest
import soundfile as sf

from bot.core.parser import CoverRequest, SongRequest, parse_admin
from bot.core.service import SongService
from storage.contract.errors import BadAudio, LimitError, NotFound, UserError
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import Plan
from storage.contract.types import QUEUED, DeliveryTarget, NewTrack, UserRef
from storage.queue import fairness
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
            meta=TrackMeta(bpm=90),
            model=ModelInfo(backend="sketch"),
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
    finish(service, job, plan=Plan(audio_codes=(4, 5)))
    same = await service.reroll(BOB, job.id, 11, TARGET)
    assert same.kind == "reroll" and same.parent_id == job.id and same.seed == 11
    assert same.spec.caption == "rain" and same.spec.plan == Plan(audio_codes=(4, 5))
    assert same.spec.model_copy(update={"plan": None}) == job.spec
    other = await service.reroll(BOB, job.id, None, TARGET)  # a new take: the blueprint, without its codes
    assert other.spec.new_take and not same.spec.new_take
    assert other.spec.plan == same.spec.plan.model_copy(update={"audio_codes": ()})
    with pytest.raises(NotFound, match="no finished song #999"):
        await service.reroll(ALICE, 999, None, TARGET)


async def test_a_planner_timed_song_is_charged_its_bound_and_its_reroll_its_track(service):
    job = await service.submit_song(ALICE, SongRequest("rain"), TARGET)
    assert job.cost == fairness.job_cost(120.0, planned=True)  # MAX_DURATION_S of these settings
    finish(service, job, plan=Plan(duration_s=47.0, audio_codes=(4, 5)), made_s=47.0)
    assert service.queue.get(job.id).cost == fairness.job_cost(47.0, planned=True)
    again = await service.reroll(ALICE, job.id, 7, TARGET)
    assert again.cost == 47.0 and again.spec.plan == Plan(duration_s=47.0, audio_codes=(4, 5))
    new_take = await service.reroll(ALICE, job.id, None, TARGET)  # its codes are planned again
    assert new_take.cost == fairness.job_cost(47.0, planned=True) and new_take.spec.plan == Plan(duration_s=47.0)
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
    with pytest.raises(LimitError, match="your 1 song for today;"):
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
    with pytest.raises(BadAudio, match="too long; I can take recordings up to 10 minutes"):
        service.check_upload(500_000, "audio/ogg", "voice.ogg", duration_s=2 * 3600.0)
    service.check_upload(500_000, "audio/ogg", "voice.ogg", duration_s=3.0)  # a short voice note is fine
    with pytest.raises(BadAudio, match="only 2 seconds"):
        service.check_upload(500_000, "audio/ogg", "voice.ogg", duration_s=2.0)


@pytest.fixture
def any_db_service(db, tmp_path):
    """The service over the `db` fixture's database: SQLite, and PostgreSQL when one answers."""
    url = db.url.render_as_string(hide_password=False)
    return SongService.from_settings(make_settings(tmp_path, database_url=url), migrate=False)


@pytest.mark.parametrize("song_id", [0, -1, 2**31, 2**40, 2**63, 10**20])
async def test_ids_no_job_can_have_are_not_found_on_every_database(any_db_service, song_id):
    # Discord's options and buttons hand over ints without the text parser: the service is the guard.
    with pytest.raises(NotFound, match=f"#{song_id}"):
        await any_db_service.reroll(ALICE, song_id, None, TARGET)
    with pytest.raises(NotFound):
        await any_db_service.lyrics(song_id)
    with pytest.raises(NotFound):
        await any_db_service.cancel(ALICE, song_id)


async def test_control_characters_are_cleaned_from_every_text_field(any_db_service):
    service = any_db_service
    request = SongRequest("lo-fi\x00 rain\x1b[2J", lyrics="[verse]\x00\r\nla la\x07\n\tla", key="C major")
    song = await service.submit_song(UserRef("telegram", "5", "Ann\x00"), request, TARGET)
    stored = service.queue.get(song.id)
    assert stored.spec.caption == "lo-fi rain[2J" and stored.spec.lyrics == "[verse]\nla la\n\tla"
    cover = await service.submit_cover(
        ALICE, CoverRequest(style="jazz\x00 trio"), wav(12), "my\x00song\x1b.mp3", DeliveryTarget("telegram", "c2")
    )
    stored = service.queue.get(cover.id)
    assert stored.spec.caption == "jazz trio" and stored.source_blob.endswith(".mp3")
    assert "\x00" not in service.accounts.find("telegram", "5").display_name


async def test_a_description_of_control_characters_only_is_refused(service):
    with pytest.raises(UserError, match="Tell me what the song should be about"):
        await service.submit_song(ALICE, SongRequest("\x00\x07 \x1b"), TARGET)


@pytest.mark.parametrize("filename", ["evil\x00.mp3", "song.mp\x003", "../../x.mp3\x00.sh", ".mp3\x00", None, "a.m p3"])
async def test_odd_upload_names_are_stored_under_a_plain_suffix(service, filename):
    job = await service.submit_cover(ALICE, CoverRequest(style="jazz"), wav(12), filename, TARGET)
    assert job.source_blob.rsplit(".", 1)[-1] in ("mp3", "bin", "sh")
    assert service.blobs.exists(job.source_blob)


async def test_ten_simultaneous_songs_of_a_new_user_get_the_cap_and_sentences(any_db_service):
    # A new user's first commands all at once: one row for them, three songs queued, seven refusals.
    newcomer = UserRef("discord", "424242", "New")
    outcomes = await asyncio.gather(
        *(any_db_service.submit_song(newcomer, SongRequest(f"rain {i}"), TARGET) for i in range(10)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(outcomes) - len(refused) == 3
    assert all(type(o) is LimitError and "the limit is 3" in o.user_message for o in refused), refused
    assert any_db_service.accounts.count() == 1


def test_the_data_folder_is_made_owner_only(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    SongService.from_settings(make_settings(tmp_path))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "songbot.db").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("backend", "said"),
    [
        ("sketch", "songbot makes songs with the sketch synthesizer (no model weights)"),
        ("acestep", "songbot makes songs with the open ACE-Step 1.5 model."),
        (None, "songbot makes songs with the sketch synthesizer"),  # the settings' ENGINE_BACKEND=sketch
    ],
)
def test_help_says_which_backend_makes_the_songs(tmp_path, backend, said):
    service = SongService.from_settings(make_settings(tmp_path), backend=backend)
    assert said in service.help_text() and "Limits:" in service.help_text()
