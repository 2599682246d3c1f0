"""Composition root of the bot process: settings → storage → service → adapters → delivery.

Adapters start only for platforms whose token is set; with none, `songbot run` falls back to
the console chat (see `songbot.cli`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from bot.core.delivery import DeliveryLoop
from bot.core.service import ResultView, SongService
from bot.core.uploads import UploadSweeper
from storage.contract.errors import SongbotError
from storage.contract.types import DeliveryView
from storage.ops.metrics import QueueCollector
from storage.ops.monitor import Monitor, database_check, start_monitor
from storage.ops.overview import Overview
from storage.settings import Settings

log = logging.getLogger("songbot.bot")


class Adapter(Protocol):
    """A chat platform: starts, stops, and delivers (it is the delivery loop's Messenger)."""

    platform: str

    async def start(self) -> None:
        """Connect and start taking commands."""
        ...

    async def stop(self) -> None:
        """Disconnect cleanly."""
        ...

    async def show_status(self, delivery: DeliveryView, text: str) -> str | None:
        """See `bot.core.delivery.Messenger`."""
        ...

    async def send_result(self, delivery: DeliveryView, result: ResultView) -> None:
        """See `bot.core.delivery.Messenger`."""
        ...

    async def send_error(self, delivery: DeliveryView, text: str) -> None:
        """See `bot.core.delivery.Messenger`."""
        ...


class AdapterFailed(SongbotError):
    """Every configured platform failed to start."""


async def _start(adapter: Any, secrets: list[str]) -> bool:
    """Start one adapter; a platform that refuses (a bad token, no network) is logged, not fatal."""
    try:
        await adapter.start()
    except Exception as error:  # noqa: BLE001 - each platform raises its own types; the others go on
        # Client libraries put the token into some messages (PTB's InvalidToken does): scrub it.
        reason = str(error)
        for secret in secrets:
            reason = reason.replace(secret, "<token>")
        log.error("could not start %s: %s: %s", adapter.platform, type(error).__name__, reason)
        return False
    log.info("adapter started", extra={"platform": adapter.platform})
    return True


def configured_platforms(settings: Settings) -> list[str]:
    """The platforms whose tokens are set."""
    names = []
    if settings.telegram_token is not None:
        names.append("telegram")
    if settings.discord_token is not None:
        names.append("discord")
    return names


def start_bot_monitor(settings: Settings, service: SongService) -> Monitor | None:
    """The bot's monitoring port when BOT_METRICS_PORT is set: its metrics and the queue's, read at scrape time."""
    if settings.bot_metrics_port is None:
        return None
    db = service.queue.engine
    service.metrics.registry.register(QueueCollector(Overview(db), service.clock, settings.engine_lease_s))
    return start_monitor(
        service.metrics.registry, [database_check(db)], settings.metrics_host, settings.bot_metrics_port
    )


def build_adapters(settings: Settings, service: SongService) -> list[Any]:
    """One adapter per configured platform (imported lazily: each pulls in its client library)."""
    adapters: list[Any] = []
    for name in configured_platforms(settings):
        if name == "telegram":
            from bot.telegram.adapter import TelegramAdapter

            adapters.append(TelegramAdapter(settings, service))
        else:
            from bot.discord.adapter import DiscordAdapter

            adapters.append(DiscordAdapter(settings, service))
    return adapters


async def run_bot(settings: Settings, stop: asyncio.Event, service: SongService | None = None) -> None:
    """Run every configured adapter and the delivery loop until `stop` is set."""
    service = service or SongService.from_settings(settings)
    delivery = DeliveryLoop(service)
    adapters = build_adapters(settings, service)
    started: list[Any] = []
    sweeper = asyncio.create_task(UploadSweeper.for_service(service).run(stop))
    try:
        for adapter in adapters:
            if await _start(adapter, settings.secrets()):
                started.append(adapter)
                delivery.register(adapter)
        if adapters and not started:
            raise AdapterFailed("No chat platform could be started; check the tokens and the network (see the log).")
        await delivery.run(stop)
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
        for adapter in reversed(started):
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter did not stop cleanly", extra={"platform": adapter.platform})
