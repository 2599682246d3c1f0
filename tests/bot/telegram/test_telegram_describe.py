"""/describe end to end on Telegram (PTB against the fake Bot API, the sketch engine): the must-show list of
issue 22 — a song made by the bot, a voice note, a PNG named .mp3, a 1 s clip, a 20-minute file — and the
"Make one like this" button, which queues a song with exactly the fields shown for whoever presses it."""

from __future__ import annotations

import re

import pytest

from bot.core.describe import Described, LikeThis
from bot.telegram.describe import describe_message
from storage.contract.spec import Description, Plan
from storage.contract.values import BPM_MAX, BPM_MIN, KEYS
from tests.bot.telegram.telegram_stack import SONG_S, RunningBot, buttons, song_id_and_seed
from tests.bot.telegram.test_telegram_cover import ogg
from tests.fakes.telegram_api import MAX_TEXT_CHARS, ApiCall, FakeTelegramAPI, FakeUser

ANN = FakeUser(301, "Ann")
BOB = FakeUser(302, "Bob")
TIMEOUT_S = 30.0
FIELDS = re.compile(r"BPM: (\d+) · Key: (.+) · Time signature: 4/4")


def is_description(call: ApiCall) -> bool:
    return str(call.params["text"]).startswith("🔎")


async def describe(api: FakeTelegramAPI, media_message: dict) -> ApiCall:
    """Reply /describe to `media_message` as Ann; the bot's description (after its status message)."""
    mark = api.mark()
    api.user_message(ANN, "/describe", reply_to=media_message)
    return await api.wait_for("sendMessage", chat_id=ANN.id, after=mark, where=is_description, timeout=TIMEOUT_S)


async def refusal(api: FakeTelegramAPI, media: tuple[str, dict]) -> str:
    """Reply /describe to `media` as Ann; the bot's only answer, one sentence."""
    mark = api.mark()
    api.user_message(ANN, "/describe", reply_to=api.user_message(ANN, media=media))
    call = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark, timeout=TIMEOUT_S)
    assert not call.params.get("reply_markup")
    return str(call.params["text"])


async def test_describe_a_song_the_bot_made_then_make_one_like_it(api: FakeTelegramAPI, running: RunningBot) -> None:
    api.user_message(ANN, f"/song lo-fi rain at night duration={SONG_S} bpm=96 key=Am seed=4")
    song = await api.wait_for("sendAudio", chat_id=ANN.id, timeout=TIMEOUT_S)
    song_id, _ = song_id_and_seed(song)
    call = await describe(api, song.result)
    text = call.params["text"]
    described_id = int(re.search(r"🔎 #(\d+)", text)[1])
    assert described_id != song_id and "sketch backend's guess" in text
    [(bpm, key)] = FIELDS.findall(text)
    assert BPM_MIN <= int(bpm) <= BPM_MAX and key in KEYS
    assert f"Duration: 0:{SONG_S:02d} · Language: —" in text and "Lyrics: none heard (instrumental)." in text
    assert buttons(call) == [f"lk:{described_id}"]
    assert running.service.queue.get(described_id).kind == "describe"

    mark = api.mark()
    query = api.press(BOB, call.result, f"lk:{described_id}")  # Bob presses it: the song is Bob's
    made = await api.wait_for("sendAudio", chat_id=ANN.id, after=mark, timeout=TIMEOUT_S)
    assert query in api.answered and "a song like" in api.answered[query]["text"]
    made_id, _ = song_id_and_seed(made)
    job = running.service.queue.get(made_id)
    caption = re.search(r"Caption: (.+)", text)[1]
    assert (job.spec.caption, job.spec.bpm, job.spec.key, job.spec.time_signature) == (caption, int(bpm), key, 4)
    assert job.spec.duration_s == SONG_S and job.spec.instrumental and job.kind == "song"
    assert job.user_id != running.service.queue.get(described_id).user_id


async def test_a_voice_note_and_an_upload_captioned_describe(api: FakeTelegramAPI, running: RunningBot) -> None:
    voice = api.user_message(ANN, media=api.voice(ogg("OPUS", 48000, seconds=5.0), duration=5))
    assert "Duration: 0:05" in (await describe(api, voice)).params["text"]
    mark = api.mark()
    api.user_message(ANN, caption="/describe", media=api.audio(ogg(seconds=6.0), mime="audio/ogg", duration=6))
    call = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark, where=is_description, timeout=TIMEOUT_S)
    assert "Duration: 0:06" in call.params["text"] and buttons(call)


async def test_what_is_not_a_recording_gets_one_sentence(api: FakeTelegramAPI, running: RunningBot) -> None:
    png = api.document(b"\x89PNG\r\n\x1a\n" + b"\0" * 64, mime="audio/mpeg", file_name="cat.mp3")
    assert "not audio" in await refusal(api, png)
    blip = api.audio(ogg(seconds=1.0), mime="audio/ogg", file_name="blip.ogg", duration=1)
    short = "That recording is only 1 second long; recordings to describe need at least 3 seconds."
    assert await refusal(api, blip) == short
    long = api.audio(b"ID3", mime="audio/mpeg", file_name="set.mp3", duration=20 * 60, declared_size=1024)
    assert "too long" in await refusal(api, long)
    mark = api.mark()
    api.user_message(ANN, "/describe")
    alone = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)
    assert alone.params["text"].startswith("Reply to an audio file, voice note or video note with /describe")
    # The 1 s clip and the 20-minute file were judged by what Telegram declared: never downloaded.
    assert {call.params["file_id"] for call in api.calls_of("getFile")} == {png[1]["file_id"]}
    assert sum(running.service.queue.counts().values()) == 0


@pytest.mark.parametrize("lines", [3, 900])
def test_long_lyrics_run_over_messages_telegram_accepts_with_the_button_under_the_last(lines: int) -> None:
    lyrics = "\n".join(f"line {n} of a very long song that goes on" for n in range(lines))
    like = LikeThis("a long song", lyrics, 90, "C major", 4, 60, "en")
    description = Description(plan=Plan(caption="a long song", lyrics=lyrics, duration_s=60.0), backend="acestep")
    parts, keyboard = describe_message(Described(7, description, like))
    assert all(len(part) <= MAX_TEXT_CHARS for part in parts)
    assert (len(parts) == 1) == (lines == 3)
    assert parts[-1].rstrip().endswith(f"line {lines - 1} of a very long song that goes on")
    assert keyboard.inline_keyboard[0][0].callback_data == "lk:7"
