"""/cover with new lyrics and language=es through the real python-telegram-bot client and the fake Bot API,
with the real ACE-Step engine on the tiny set (its LM reading the source): the words reach the text encoder
as the official cover formats them, token for token, and `/reroll <id> <seed>` repeats the cover exactly."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from engine.acestep.text import LYRICS_MAX_TOKENS, encode_ids
from storage.settings import Settings
from tests.bot.telegram.telegram_stack import RunningBot, song_id_and_seed, telegram_settings
from tests.bot.telegram.test_telegram_cover import CARA, ogg
from tests.engine.acestep.test_acestep_cover_lyrics import official_tokenizer, record
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import start_engine

TIMEOUT_S = 120.0
RECORD = record("dit_cover_new_lyrics_es")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.acestep.tiny import make_tiny

    root = tmp_path_factory.mktemp("tiny_models")
    make_tiny(root, seed=0)
    return root


@pytest.fixture
def settings(api: FakeTelegramAPI, tmp_path: Path, tiny_models: Path) -> Settings:
    values = {"engine_backend": "acestep", "model_dir": tiny_models, "engine_device": "cpu"}
    return telegram_settings(api, tmp_path, **values)


@pytest.fixture
def engine(settings: Settings) -> Iterator[dict[str, list[str]]]:
    """The real engine in a thread, its text encoder's prompts recorded."""
    seen: dict[str, list[str]] = {"captions": [], "lyrics": []}

    def wrap(generator: Any) -> Any:
        assert generator.planner is not None  # the tiny LM reads each cover's source
        text = generator.pipeline.text
        own_captions, own_lyrics = text.captions, text.lyrics
        text.captions = lambda prompts: seen["captions"].extend(prompts) or own_captions(prompts)
        text.lyrics = lambda prompts: seen["lyrics"].extend(prompts) or own_lyrics(prompts)
        return generator

    stop = start_engine(settings, wrap)
    yield seen
    stop()


async def test_a_cover_in_spanish_with_new_words_and_its_exact_reroll(
    api: FakeTelegramAPI, running: RunningBot, engine: dict[str, list[str]]
) -> None:
    inputs = RECORD["inputs"]
    original = api.user_message(CARA, media=api.voice(ogg("OPUS", 48000, seconds=8.0), duration=8))
    mark = api.mark()
    api.user_message(CARA, f"/cover {inputs['captions']} language=es\n{inputs['lyrics']}", reply_to=original)
    first = await api.wait_for("sendAudio", chat_id=CARA.id, after=mark, timeout=TIMEOUT_S)
    song_id, seed = song_id_and_seed(first)

    job, track = running.service.queue.get(song_id), running.service.library.get(song_id)
    assert job is not None and (job.spec.lyrics, job.spec.language) == (inputs["lyrics"], "es")
    assert track is not None and track.plan is not None  # the LM's reading, with the user's words
    assert (track.lyrics, track.plan.lyrics, track.plan.language) == (inputs["lyrics"], inputs["lyrics"], "es")
    # What the text encoder was given: the official cover's lyric branch, token for token.
    assert set(engine["lyrics"]) == {RECORD["lyric_branch_text"]}
    ids = encode_ids(official_tokenizer(), engine["lyrics"][0], LYRICS_MAX_TOKENS)
    assert ids == RECORD["lyric_branch_token_ids"]
    assert all(f"# Caption\n{inputs['captions']}\n" in prompt for prompt in engine["captions"])

    engine["lyrics"].clear()
    mark = api.mark()
    api.user_message(CARA, f"/reroll {song_id} {seed}")
    again = await api.wait_for("sendAudio", chat_id=CARA.id, after=mark, timeout=TIMEOUT_S)
    assert song_id_and_seed(again)[1] == seed
    samples = sf.read(io.BytesIO(first.files["audio"].data))[0]
    np.testing.assert_array_equal(sf.read(io.BytesIO(again.files["audio"].data))[0], samples)
    assert set(engine["lyrics"]) == {RECORD["lyric_branch_text"]}
