"""House styles through Telegram's real client (python-telegram-bot, fake Bot API) and the tiny ACE-Step engine."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.acestep.tiny import DEMO_STYLE, TINY_DIT, write_demo_style, write_tiny_set
from storage.styles import loras_dir
from tests.bot.telegram.telegram_stack import SONG_S, song_id_and_seed, start_bot, telegram_settings
from tests.fakes.telegram_api import FakeTelegramAPI, FakeUser
from tests.helpers import start_engine

ANN = FakeUser(101, "Ann")
SONG_TIMEOUT_S = 120  # the tiny ACE-Step set on a shared CPU


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny DiT, VAE and text encoder (no LM: the songs follow their specs) and the demo style."""
    model_dir = tmp_path_factory.mktemp("tiny_models")
    write_tiny_set(model_dir, seed=0)
    write_demo_style(loras_dir(model_dir) / DEMO_STYLE, TINY_DIT, seed=0)
    return model_dir


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


async def test_styles_list_refuse_and_make_a_styled_song(
    api: FakeTelegramAPI, tmp_path: Path, tiny_models: Path, one_thread: None
) -> None:
    settings = telegram_settings(api, tmp_path, engine_backend="acestep", model_dir=tiny_models, engine_device="cpu")
    stop_engine = start_engine(settings)
    bot = await start_bot(api, settings)
    try:
        assert "styles" in [c["command"] for c in api.commands]
        mark = api.mark()
        api.user_message(ANN, "/styles")
        listing = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)
        assert "• demo" in listing.params["text"] and "style=<name>" in listing.params["text"]

        mark = api.mark()
        api.user_message(ANN, f"/song rain at night duration={SONG_S} style=nope")
        status = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)  # "queuing…", then the answer
        sentence = "There is no style called 'nope'; the styles here are demo (see /styles)."
        key = (ANN.id, status.result["message_id"])
        await api.wait_until(lambda: any(sentence in text for text in api.edits.get(key, [])))

        mark = api.mark()
        api.user_message(ANN, f"/song rain at night duration={SONG_S} seed=3 style=demo style_scale=0.5")
        audio = await api.wait_for("sendAudio", chat_id=ANN.id, after=mark, timeout=SONG_TIMEOUT_S)
        song_id, seed = song_id_and_seed(audio)
        track = bot.service.library.get(song_id)
        assert seed == 3 and track is not None and track.style is not None
        assert (track.style.name, track.style.scale, len(track.style.sha256)) == ("demo", 0.5, 64)
    finally:
        with contextlib.suppress(Exception):
            await bot.stop()
        stop_engine()
