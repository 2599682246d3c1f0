"""The Telegram test stack: settings pointing at the fake Bot API, the engine in a thread, the bot in-process."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.service import SongService
from bot.runner import run_bot
from storage.settings import Settings
from tests.fakes.telegram_api import ApiCall, FakeTelegramAPI
from tests.helpers import make_settings

SONG_S = 10  # the shortest song the service accepts; the sketch backend makes one in well under a second


def telegram_settings(api: FakeTelegramAPI, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a bot that talks to the fake API and a sketch engine, with short intervals."""
    values: dict[str, Any] = {
        "telegram_token": api.token,
        "telegram_api_base_url": api.base_url,
        "telegram_file_base_url": api.file_base_url,
        "engine_max_batch": 1,
        "delivery_poll_s": 0.1,
        "status_edit_interval_s": 0.3,
        "default_duration_s": SONG_S,
        "max_pending_per_user": 12,
        "daily_quota": 100,
        "max_source_mb": 1,
        **overrides,
    }
    return make_settings(tmp_path, **values)


@dataclass
class RunningBot:
    """A bot running in this event loop: songbot's runner with the Telegram adapter and delivery loop."""

    api: FakeTelegramAPI
    settings: Settings
    service: SongService
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Stop the bot as `songbot run` does on SIGTERM."""
        self.stop_event.set()
        await asyncio.wait_for(self.task, 20)


async def start_bot(api: FakeTelegramAPI, settings: Settings, wait_for_polling: bool = True) -> RunningBot:
    """Start ``bot.runner.run_bot`` and wait until it polls the fake API."""
    service = SongService.from_settings(settings)
    stop_event = asyncio.Event()
    mark = api.mark()
    task = asyncio.create_task(run_bot(settings, stop_event, service), name="bot")
    if wait_for_polling:
        await api.wait_for("getUpdates", after=mark, timeout=20, ok_only=False)  # the first long poll is open
    return RunningBot(api, settings, service, stop_event, task)


def song_id_and_seed(call: ApiCall) -> tuple[int, int]:
    """The song id and seed that a result's caption shows."""
    match = re.search(r"#(\d+) · seed (\d+)", call.params["caption"])
    assert match, call.params["caption"]
    return int(match.group(1)), int(match.group(2))


def buttons(call: ApiCall) -> list[str]:
    """The callback data of a message's inline buttons."""
    return [b["callback_data"] for row in call.params["reply_markup"]["inline_keyboard"] for b in row]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    """Poll ``predicate`` (for state that no API call announces, such as rows in the database)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.05)
