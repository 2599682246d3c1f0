"""/cover end to end: audio, voice and video notes are covered; bad files get one sentence, checked before
downloading where Telegram tells the size and type, and the bot keeps serving."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from storage.settings import Settings
from tests.bot.telegram.telegram_stack import RunningBot, song_id_and_seed, telegram_settings
from tests.fakes.telegram_api import ApiCall, FakeTelegramAPI, FakeUser

CARA = FakeUser(201, "Cara")
SOURCE_S = 12.0
MAX_SOURCE_S = 20
TIMEOUT_S = 30.0


@pytest.fixture
def settings(api: FakeTelegramAPI, tmp_path: Path) -> Settings:
    return telegram_settings(api, tmp_path, max_source_duration_s=MAX_SOURCE_S)


def tone(seconds: float = SOURCE_S, rate: int = 16000, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 330 * t)).astype("float32")


def ogg(subtype: str = "VORBIS", rate: int = 16000, seconds: float = SOURCE_S, level: float = 0.3) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds, rate, level), rate, format="OGG", subtype=subtype)
    return buffer.getvalue()


def mp4_with_sound(rate: int = 16000) -> bytes:
    """A round video message as Telegram stores it: MP4 with an AAC track (no picture needed here)."""
    wave, buffer = tone(rate=rate), io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


async def cover_of(api: FakeTelegramAPI, media: tuple[str, dict], text: str = "/cover jazz trio") -> ApiCall:
    """Post ``media`` as Cara, reply to it with ``text``, and return the cover's sendAudio call."""
    original = api.user_message(CARA, media=media)
    mark = api.mark()
    api.user_message(CARA, text, reply_to=original)
    return await api.wait_for("sendAudio", chat_id=CARA.id, after=mark, timeout=TIMEOUT_S)


async def refusal_of(api: FakeTelegramAPI, media: tuple[str, dict]) -> str:
    """Reply /cover to ``media``; the bot's only answer must be one sentence. Returns it."""
    original = api.user_message(CARA, media=media)
    before = len(api.chat_messages(CARA.id))
    mark = api.mark()
    api.user_message(CARA, "/cover lounge", reply_to=original)
    reply = await api.wait_for("sendMessage", chat_id=CARA.id, after=mark)
    assert len(api.chat_messages(CARA.id)) == before + 1
    text = reply.params["text"]
    assert text.count(". ") == 0 and text.endswith("."), text
    return text


async def test_covers_of_audio_voice_and_video_note(api: FakeTelegramAPI, running: RunningBot) -> None:
    audio_cover = await cover_of(api, api.audio(ogg(), mime="audio/ogg", file_name="tune.ogg", duration=12))
    voice_cover = await cover_of(api, api.voice(ogg("OPUS", 48000), duration=12), "/cover strength=0.3 choir")
    note_cover = await cover_of(api, api.video_note(mp4_with_sound(), duration=12))
    assert "jazz trio" in audio_cover.params["caption"].lower()
    assert "choir" in voice_cover.params["caption"].lower()
    jobs = [running.service.queue.get(song_id_and_seed(c)[0]) for c in (audio_cover, voice_cover, note_cover)]
    assert [job.kind for job in jobs if job] == ["cover"] * 3
    assert jobs[1] and jobs[1].spec.strength == 0.3
    for call in (audio_cover, voice_cover, note_cover):  # a cover keeps the length of its source
        samples, rate = sf.read(io.BytesIO(call.files["audio"].data))
        assert abs(len(samples) / rate - SOURCE_S) < 0.2


async def test_an_eight_second_voice_note_is_covered_at_its_own_length(
    api: FakeTelegramAPI, running: RunningBot
) -> None:
    cover = await cover_of(api, api.voice(ogg("OPUS", 48000, seconds=8.0), duration=8), "/cover choir")
    samples, rate = sf.read(io.BytesIO(cover.files["audio"].data))
    assert abs(len(samples) / rate - 8.0) < 0.2
    job = running.service.queue.get(song_id_and_seed(cover)[0])
    assert job is not None and job.kind == "cover" and job.spec.strength == 1.0


async def test_bad_files_get_one_sentence_and_the_bot_keeps_serving(api: FakeTelegramAPI, running: RunningBot) -> None:
    png = api.document(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, mime="image/png", file_name="cat.png")
    assert "not audio" in await refusal_of(api, png)
    empty = api.audio(b"", file_name="empty.mp3")
    assert "empty" in await refusal_of(api, empty)
    huge = api.document(b"ID3", mime="audio/mpeg", file_name="long.mp3", declared_size=5 * 1024 * 1024)
    assert "MB" in await refusal_of(api, huge)
    corrupt = api.audio(b"this is not an mp3 at all" * 40, file_name="broken.mp3", duration=12)
    assert "corrupt" in await refusal_of(api, corrupt)
    silent = api.audio(ogg(level=0.0), mime="audio/ogg", file_name="silence.ogg", duration=12)
    assert "silent" in await refusal_of(api, silent)
    too_long = api.voice(ogg("OPUS", 48000, seconds=MAX_SOURCE_S + 5), duration=MAX_SOURCE_S + 5)
    assert "too long" in await refusal_of(api, too_long)
    too_short = api.audio(ogg(seconds=2), mime="audio/ogg", file_name="blip.ogg", duration=2)
    assert "only 2 seconds" in await refusal_of(api, too_short)
    # A length the file's header lies about is still caught after the download.
    lying = api.audio(ogg(seconds=2), mime="audio/ogg", file_name="liar.ogg", duration=15)
    assert "only 2 seconds" in await refusal_of(api, lying)
    # Size, type and declared length were judged before downloading: only the corrupt, silent and lying
    # files were fetched from Telegram.
    asked = {call.params["file_id"] for call in api.calls_of("getFile")}
    assert asked == {media[1]["file_id"] for media in (corrupt, silent, lying)}
    no_reply = len(api.chat_messages(CARA.id))
    api.user_message(CARA, "/cover but to nothing")
    await api.wait_until(lambda: len(api.chat_messages(CARA.id)) > no_reply)
    assert "Reply to an audio file" in api.chat_messages(CARA.id)[-1]["text"]

    still = await cover_of(api, api.audio(ogg(), mime="audio/ogg", file_name="ok.ogg", duration=12))
    assert song_id_and_seed(still)
    # Nine sentences, then the good cover's status message and its audio: nothing else, and one job only.
    assert len(api.chat_messages(CARA.id)) == 11
    assert sum(running.service.queue.counts().values()) == 1
