"""The Telegram bot end to end: real python-telegram-bot, songbot's adapter, delivery loop and engine
(sketch backend), against the fake Bot API on 127.0.0.1."""

from __future__ import annotations

import io
import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from storage.settings import Settings
from tests.bot.telegram.telegram_stack import (
    SONG_S,
    RunningBot,
    buttons,
    free_port,
    song_id_and_seed,
    start_bot,
    telegram_settings,
)
from tests.fakes.telegram_api import BOT_USER, ApiCall, FakeTelegramAPI, FakeUser, group_chat

ANN, BOB = FakeUser(101, "Ann"), FakeUser(102, "Bob")
SONG_TIMEOUT_S = 30.0


def decode(api: FakeTelegramAPI, call: ApiCall) -> tuple[np.ndarray, int]:
    """The samples of the MP3 the bot uploaded."""
    samples, rate = sf.read(io.BytesIO(call.files["audio"].data), dtype="float32")
    return samples, rate


async def test_song_status_audio_buttons_and_rerolls(api: FakeTelegramAPI, running: RunningBot) -> None:
    assert [c["command"] for c in api.commands][:2] == ["song", "cover"]
    request = api.user_message(ANN, f"/song calm piano at dawn duration={SONG_S}\n[verse]\nhello morning")
    audio = await api.wait_for("sendAudio", chat_id=ANN.id, timeout=SONG_TIMEOUT_S)

    # One status message, answering the request, edited as the job moved, never to the same text.
    status = api.calls_of("sendMessage", chat_id=ANN.id)
    assert len(status) == 1 and status[0].params["reply_parameters"]["message_id"] == request["message_id"]
    status_id = status[0].result["message_id"]
    await api.wait_until(lambda: api.edits[(ANN.id, status_id)][-1].startswith("✅"))
    texts = api.edits[(ANN.id, status_id)]
    assert len(texts) >= 3 and all(a != b for a, b in itertools.pairwise(texts))
    assert api.calls_of("sendChatAction", chat_id=ANN.id)[-1].params["action"] == "upload_voice"

    # The audio: an MP3 of the asked duration, tagged, captioned, with the two buttons.
    samples, rate = decode(api, audio)
    assert abs(len(samples) / rate - SONG_S) < 0.1
    song_id, seed = song_id_and_seed(audio)
    assert audio.params["performer"] == "SongBot" and audio.params["duration"] == SONG_S
    assert audio.params["title"] and audio.params["title"] in audio.params["caption"]
    assert buttons(audio) == [f"rr:{song_id}", f"ly:{song_id}", f"rp:{song_id}", f"ex:{song_id}"]
    assert audio.result["reply_to_message"]["message_id"] == request["message_id"]

    # 🎲 Re-roll: a new song with a new seed; the press is answered.
    mark = api.mark()
    query = api.press(ANN, audio.result, f"rr:{song_id}")
    rerolled = await api.wait_for("sendAudio", chat_id=ANN.id, after=mark, timeout=SONG_TIMEOUT_S)
    assert query in api.answered
    new_id, new_seed = song_id_and_seed(rerolled)
    assert new_id != song_id and new_seed != seed

    # 📝 Lyrics: answered, and the lyrics come as a message.
    mark = api.mark()
    query = api.press(ANN, audio.result, f"ly:{song_id}")
    lyrics = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)
    assert "hello morning" in lyrics.params["text"] and query in api.answered

    # /reroll <id> <its own seed>: exactly the same audio.
    mark = api.mark()
    api.user_message(ANN, f"/reroll {song_id} {seed}")
    again = await api.wait_for("sendAudio", chat_id=ANN.id, after=mark, timeout=SONG_TIMEOUT_S)
    assert song_id_and_seed(again)[1] == seed
    np.testing.assert_array_equal(decode(api, again)[0], samples)


async def test_group_commands_and_refusals(api: FakeTelegramAPI, running: RunningBot) -> None:
    band = group_chat(-300)
    api.user_message(BOB, "/song@other_bot not for us", chat=band)
    api.user_message(BOB, f"/song@{BOT_USER['username']} brass band march duration={SONG_S}", chat=band)
    audio = await api.wait_for("sendAudio", chat_id=-300, timeout=SONG_TIMEOUT_S)
    assert "brass band" in audio.params["caption"].lower()
    assert len(api.calls_of("sendMessage", chat_id=-300)) == 1  # only the status of the song meant for us

    mark = api.mark()
    api.user_message(BOB, "/song jazz duration=abc")
    refusal = await api.wait_for("sendMessage", chat_id=BOB.id, after=mark)
    assert refusal.params["text"] == "duration must be a whole number, not 'abc'."

    mark = api.mark()
    api.user_message(BOB, "/help")
    help_text = (await api.wait_for("sendMessage", chat_id=BOB.id, after=mark)).params["text"]
    assert "/song" in help_text and "/cover" in help_text and "Privacy" in help_text
    assert f"/song@{BOT_USER['username']}" in help_text  # how to address the bot in a group
    assert "songbot makes songs with the sketch synthesizer (no model weights)" in help_text
    for text in ("/dance", "just chatting"):
        mark = api.mark()
        api.user_message(BOB, text)
        hint = await api.wait_for("sendMessage", chat_id=BOB.id, after=mark)
        assert hint.params["text"].startswith("Send /song")


async def test_token_and_message_text_never_logged(
    api: FakeTelegramAPI, settings: Settings, engine: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # even at DEBUG, from the start of the bot to its end
    bot = await start_bot(api, settings)
    api.user_message(ANN, f"/song secret-words-here duration={SONG_S}")
    await api.wait_for("sendAudio", chat_id=ANN.id, timeout=SONG_TIMEOUT_S)
    await bot.stop()
    assert caplog.records, "nothing was logged at all"
    secret = api.token.split(":")[1]
    assert secret not in caplog.text and "secret-words-here" not in caplog.text


async def test_flood_control_on_send_audio_is_retried(api: FakeTelegramAPI, running: RunningBot) -> None:
    api.fail_next("sendAudio", 1, retry_after=1)
    api.fail_next("editMessageText", 1, retry_after=1)
    api.user_message(ANN, f"/song patient waltz duration={SONG_S}")
    audio = await api.wait_for("sendAudio", chat_id=ANN.id, timeout=SONG_TIMEOUT_S)
    tries = api.calls_of("sendAudio", chat_id=ANN.id, ok_only=False)
    assert [t.error.status if t.error else 200 for t in tries] == [429, 200]
    assert tries[1].at - tries[0].at >= 1.0  # it waited retry_after before sending again
    assert tries[1].files["audio"].data == tries[0].files["audio"].data and decode(api, audio)[0].size
    # The refused status edit was retried too: the status message still ends on "done".
    assert api.calls_of("editMessageText", ok_only=False)[0].error is not None
    status_id = api.calls_of("sendMessage", chat_id=ANN.id)[0].result["message_id"]
    await api.wait_until(lambda: api.edits[(ANN.id, status_id)][-1].startswith("✅"))


async def test_history_lists_songs_with_reroll_buttons(api: FakeTelegramAPI, running: RunningBot) -> None:
    api.user_message(BOB, f"/song first duration={SONG_S}")
    first = await api.wait_for("sendAudio", chat_id=BOB.id, timeout=SONG_TIMEOUT_S)
    mark = api.mark()
    api.user_message(BOB, "/history")
    history = await api.wait_for("sendMessage", chat_id=BOB.id, after=mark)
    song_id, seed = song_id_and_seed(first)
    assert f"#{song_id}" in history.params["text"] and f"seed {seed}" in history.params["text"]
    assert buttons(history) == [f"rr:{song_id}"]


async def test_webhook_mode(api: FakeTelegramAPI, tmp_path: Path, settings: Settings, engine: None) -> None:
    port = free_port()
    hooked = telegram_settings(
        api, tmp_path, telegram_webhook_url=f"http://127.0.0.1:{port}/telegram-hook", telegram_webhook_port=port
    )
    mark = api.mark()
    bot = await start_bot(api, hooked, wait_for_polling=False)
    try:
        await api.wait_for("setWebhook", after=mark)
        assert api.webhook["url"].endswith("/telegram-hook") and api.webhook["secret_token"]
        assert api.token.split(":")[1] not in api.webhook["secret_token"]
        api.user_message(ANN, f"/song hooked on a feeling duration={SONG_S}")
        await api.wait_for("sendAudio", chat_id=ANN.id, timeout=SONG_TIMEOUT_S)
        assert api.calls_of("getUpdates", after=mark, ok_only=False) == []
    finally:
        await bot.stop()
