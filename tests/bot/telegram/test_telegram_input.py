"""Odd input through the real Telegram stack: each gets one sentence, the bot goes on (no songs are made)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.bot.telegram.telegram_stack import RunningBot, start_bot, telegram_settings
from tests.fakes.telegram_api import FakeTelegramAPI, FakeUser

ANN = FakeUser(101, "Ann")


@pytest.fixture
async def bot(api: FakeTelegramAPI, tmp_path: Path) -> AsyncIterator[RunningBot]:
    running = await start_bot(api, telegram_settings(api, tmp_path))
    yield running
    await running.stop()


async def reply_to(api: FakeTelegramAPI, text: str) -> str:
    mark = api.mark()
    api.user_message(ANN, text)
    return str((await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)).params["text"])


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("/lyrics ²", "Use /lyrics <song id>, for example: /lyrics 12"),
        ("/lyrics 99999999999999999999", "Use /lyrics <song id>, for example: /lyrics 12"),
        ("/lyrics 2147483648", "song id must be between 1 and 2147483647."),
        ("/cancel ４", "Use /cancel or /cancel <song id>, for example: /cancel 12"),
        ("/reroll 99999999999999999999", "song id must be a whole number, not '99999999999999999999'."),
        ("/reroll ²", "song id must be a whole number written with the digits 0-9, not '²'."),
        ("/reroll -7", "song id must be between 1 and 2147483647."),
        ("/song rain timesig=4/0", "timesig must be 2/4, 3/4, 4/4 or 6/8."),
    ],
)
async def test_odd_ids_get_one_sentence(api: FakeTelegramAPI, bot: RunningBot, text: str, sentence: str) -> None:
    assert await reply_to(api, text) == sentence
    assert (await reply_to(api, "/history")).startswith("You have no songs yet")  # still answering


@pytest.mark.parametrize("data", ["rr:²", "ly:99999999999999999999", "rr:-1"])
async def test_odd_button_ids_are_answered(api: FakeTelegramAPI, bot: RunningBot, data: str) -> None:
    query = api.press(ANN, api.user_message(ANN, "hello"), data)
    await api.wait_until(lambda: query in api.answered)
    assert api.answered[query]["text"] == "This button no longer works."


def ogg(seconds: float = 12.0) -> bytes:
    buffer = io.BytesIO()
    wave = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * 16000)) / 16000)
    sf.write(buffer, wave, 16000, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


async def test_nul_and_control_characters_are_cleaned(api: FakeTelegramAPI, bot: RunningBot) -> None:
    jobs = bot.service.queue
    api.user_message(ANN, "/song rain\x00 at\x1b night\n[verse]\x00\r\nla\x07 la")
    await api.wait_until(lambda: jobs.get(1) is not None)
    song = jobs.get(1)
    assert song is not None and (song.spec.caption, song.spec.lyrics) == ("rain at night", "[verse]\nla la")

    upload = api.user_message(ANN, media=api.audio(ogg(), mime="audio/ogg", file_name="tune\x00.og\x00g", duration=12))
    api.user_message(ANN, "/cover jazz\x00 trio", reply_to=upload)
    await api.wait_until(lambda: jobs.get(2) is not None)
    cover = jobs.get(2)
    assert cover is not None and cover.spec.caption == "jazz trio" and cover.source_blob.endswith(".ogg")
