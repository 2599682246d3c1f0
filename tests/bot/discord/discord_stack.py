"""The whole Discord stack for end-to-end tests: fake Discord, songbot's bot process, the real engine.

The bot runs through `bot.runner.run_bot` (the production composition root) with DISCORD_API_BASE_URL
and DISCORD_GATEWAY_URL pointing at the fake; the engine is the real worker with the sketch backend,
in a thread.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bot.core.service import SongService
from bot.discord.adapter import sync_commands
from bot.runner import run_bot
from storage.settings import Settings
from tests.fakes.discord_api import BOT_TOKEN, FakeDiscord
from tests.fakes.discord_http import Call
from tests.fakes.discord_interactions import InteractionRecord
from tests.helpers import make_settings, start_engine

RESULT_TIMEOUT_S = 60.0
# Seconds the engine pauses after each progress report, like a slow GPU, so that the status edits
# between "queued" and the result can be seen (the sketch backend alone finishes in milliseconds).
PACE_S = 0.4
ADMIN_ID = "900000000000000001"


@dataclass
class Stack:
    """A fake Discord, settings, the service, the engine thread and the bot process task."""

    fake: FakeDiscord
    settings: Settings
    service: SongService
    stop_engine: Any = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    restarts: list[int] = field(default_factory=list)

    async def start_bot(self) -> None:
        """Run the bot process; return once its client has identified on the gateway."""
        before = self.fake.gateway.identify_count
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(run_bot(self.settings, self._stop, self.service))
        await self.fake.wait_for(lambda: self.fake.gateway.identify_count > before or self._task.done())
        if self._task.done():
            await self._task

    async def stop_bot(self) -> None:
        """SIGTERM's path: set the stop event, let the runner stop the adapter."""
        if self._task is not None and self._stop is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, 30)
            self._task = None


def stack_settings(tmp_path: Path, fake: FakeDiscord, **overrides: Any) -> Settings:
    """Settings for a bot talking to `fake`."""
    values: dict[str, Any] = {
        "discord_token": BOT_TOKEN,
        "discord_api_base_url": fake.api_base,
        "discord_gateway_url": fake.gateway_url,
        "default_duration_s": 10,
        "admin_ids": frozenset({f"discord:{ADMIN_ID}"}),
    }
    return make_settings(tmp_path, **(values | overrides))


def build_stack(tmp_path: Path, fake: FakeDiscord, *, engine: bool = True, **overrides: Any) -> Stack:
    """Settings, service and (optionally) the engine; the bot is started by the test."""
    settings = stack_settings(tmp_path, fake, **overrides)
    service = SongService.from_settings(settings)
    return Stack(fake, settings, service, start_paced_engine(settings) if engine else None)


@asynccontextmanager
async def running_stack(tmp_path: Path, fake: FakeDiscord, **overrides: Any) -> AsyncIterator[Stack]:
    """Commands synced to the guild, the engine running, the bot process connected; all stopped after."""
    built = build_stack(tmp_path, fake, **overrides)
    await sync_commands(built.settings, int(fake.guild_id))
    await built.start_bot()
    try:
        yield built
    finally:
        await built.stop_bot()
        built.stop_engine()


class PacedGenerator:
    """The configured backend, pausing after each progress report."""

    def __init__(self, inner: Any, pause_s: float) -> None:
        self.inner = inner
        self.pause_s = pause_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, batch: list[Any], progress: Any) -> Any:
        def paced(job_id: int | None, stage: str, percent: float) -> None:
            progress(job_id, stage, percent)
            time.sleep(self.pause_s)

        return self.inner.generate(batch, paced)


def start_paced_engine(settings: Settings, pause_s: float = PACE_S) -> Callable[[], None]:
    """The real engine worker in a thread (`tests.helpers.start_engine`), with a paced backend."""
    return start_engine(settings, wrap=lambda generator: PacedGenerator(generator, pause_s))


async def final_edit(fake: FakeDiscord, record: InteractionRecord) -> Call:
    """The edit of the original response that carried the song."""
    return await fake.wait_for(lambda: next((c for c in record.edits if c.files), None), RESULT_TIMEOUT_S)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Decoded samples and rate of an MP3."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples, rate


def wav_bytes(seconds: float, rate: int = 16_000, freq: float = 330.0) -> bytes:
    """A small mono sine WAV (a stand-in for an uploaded song)."""
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.4 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    buffer = io.BytesIO()
    sf.write(buffer, tone.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def custom_ids(message: dict[str, Any]) -> list[str]:
    """The custom ids of a message's buttons."""
    return [c["custom_id"] for row in message.get("components", []) for c in row.get("components", [])]
