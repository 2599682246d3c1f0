"""A bot process killed while its job runs, then started again: the song is delivered exactly once.

The bot is the real ``python -m songbot bot`` process, killed with SIGKILL; the engine is the real worker
(sketch backend) in a thread of the test, held at its first progress report until the bot is dead.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.service import SongService
from storage.settings import Settings
from tests.bot.telegram.telegram_stack import SONG_S, eventually
from tests.fakes.telegram_api import FakeTelegramAPI, FakeUser
from tests.helpers import REPO, start_engine

DANA = FakeUser(501, "Dana")


class HeldGenerator:
    """Wraps the real generator: reports the first progress, then waits for ``release`` before working."""

    def __init__(self, inner: Any, release: threading.Event) -> None:
        self.inner, self.release = inner, release

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, batch: list[Any], progress: Callable[[int | None, str, float], None]) -> list[Any]:
        progress(batch[0].job_id, "generating", 5.0)
        if not self.release.wait(timeout=60):
            raise RuntimeError("the test never released the engine")
        return self.inner.generate(batch, progress)


class BotProcess:
    """``python -m songbot bot`` configured through the environment, as an operator would run it."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        assert settings.telegram_token is not None
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_", "DATABASE_"))},
            "PYTHONPATH": str(REPO),
            "SONGBOT_DATA_DIR": str(settings.data_dir),
            "MODEL_DIR": str(settings.model_dir),
            "TELEGRAM_TOKEN": settings.telegram_token.get_secret_value(),
            "TELEGRAM_API_BASE_URL": settings.telegram_api_base_url,
            "TELEGRAM_FILE_BASE_URL": settings.telegram_file_base_url,
            "DELIVERY_POLL_S": str(settings.delivery_poll_s),
            # A short delivery lease: the restarted process takes over the dead one's delivery quickly.
            "DELIVERY_LEASE_S": "2",
            "STATUS_EDIT_INTERVAL_S": str(settings.status_edit_interval_s),
            "LOG_LEVEL": "DEBUG",
        }
        self.workdir = workdir  # no .env there: the environment above is all the process reads
        self.log = workdir / "bot.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, api: FakeTelegramAPI) -> None:
        mark = api.mark()
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "songbot", "bot", cwd=self.workdir, env=self.env, stdout=log, stderr=log
            )
        await api.wait_for("getUpdates", after=mark, ok_only=False, timeout=30)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no cleanup, no lease released, nothing flushed
        await self.process.wait()

    async def terminate(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                await self.kill()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def held_engine(settings: Settings, release: threading.Event) -> Iterator[None]:
    stop = start_engine(settings, wrap=lambda inner: HeldGenerator(inner, release))
    yield
    release.set()
    stop()


@pytest.fixture
async def bot_process(settings: Settings, tmp_path: Path) -> AsyncIterator[BotProcess]:
    workdir = tmp_path / "bot-cwd"
    workdir.mkdir()
    process = BotProcess(settings, workdir)
    yield process
    await process.terminate()


async def test_killed_bot_delivers_exactly_once_after_restart(
    api: FakeTelegramAPI, settings: Settings, held_engine: None, release: threading.Event, bot_process: BotProcess
) -> None:
    service = SongService.from_settings(settings)
    await bot_process.start(api)
    api.user_message(DANA, f"/song night drive synthwave duration={SONG_S}")
    status = await api.wait_for("sendMessage", chat_id=DANA.id, timeout=20)
    status_key = (DANA.id, status.result["message_id"])
    await api.wait_until(lambda: any("generating" in text for text in api.edits[status_key]), timeout=20)

    await bot_process.kill()  # the job is running in the engine right now
    release.set()
    await eventually(lambda: (job := service.queue.get(1)) is not None and job.status == "succeeded")
    assert api.calls_of("sendAudio") == []  # nobody was there to deliver it

    await bot_process.start(api)
    audio = await api.wait_for("sendAudio", chat_id=DANA.id, timeout=30)
    await eventually(lambda: (row := service.outbox.for_job(1)) is not None and row.state == "done")
    await api.wait_until(lambda: api.edits[status_key][-1] == "✅ #1 done")
    await asyncio.sleep(1.0)  # ten more delivery passes, in which a duplicate would show up

    assert bot_process.process is not None and bot_process.process.returncode is None
    assert len(api.calls_of("sendAudio")) == 1 and audio.params["caption"]
    assert len(api.calls_of("sendMessage", chat_id=DANA.id)) == 1  # the same status message, continued
    assert api.token.split(":")[1] not in bot_process.log.read_text()  # not even at LOG_LEVEL=DEBUG
