"""Fixtures for the Telegram tests: the fake Bot API, settings pointing at it, the engine and the bot."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage.settings import Settings
from tests.bot.telegram.telegram_stack import RunningBot, start_bot, telegram_settings
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import start_engine


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    server = FakeTelegramAPI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(api: FakeTelegramAPI, tmp_path: Path) -> Settings:
    return telegram_settings(api, tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[None]:
    stop = start_engine(settings)
    yield
    stop()


@pytest.fixture
async def running(api: FakeTelegramAPI, settings: Settings, engine: None) -> AsyncIterator[RunningBot]:
    bot = await start_bot(api, settings)
    yield bot
    with contextlib.suppress(Exception):
        await bot.stop()
