"""The Discord adapter: composition of the client, the messenger and the endpoint settings.

    adapter = DiscordAdapter(settings, service)   # bot/runner.py builds it when DISCORD_TOKEN is set
    await adapter.start()                         # login, gateway, READY
    delivery.register(adapter)                    # it is the delivery loop's Messenger for "discord"
    await adapter.stop()                          # on SIGTERM: closes the gateway and HTTP session

Commands are not synced at start (Discord caps command creates per day): run
`songbot discord sync [--guild ID]`, which calls `sync_commands`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable

import discord
import yarl

from bot.core.answers import Answer
from bot.core.describe import Described
from bot.core.service import ResultView, SongService
from bot.discord.client import SongbotClient
from bot.discord.messenger import DiscordMessenger
from bot.discord.replies import PLATFORM
from storage.contract.types import DeliveryView
from storage.db import utcnow
from storage.settings import Settings

log = logging.getLogger("songbot.discord")


def configure_endpoints(settings: Settings) -> None:
    """Point discord.py at DISCORD_API_BASE_URL and DISCORD_GATEWAY_URL.

    discord.py reads both from class attributes (`Route.BASE`, used by REST and the interaction
    webhooks alike, and `DiscordWebSocket.DEFAULT_GATEWAY`); it has no per-client setting, so this
    is process-wide, which suits one bot process per Discord application.
    """
    discord.http.Route.BASE = settings.discord_api_base_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def _log_gateway_end(task: asyncio.Task[None]) -> None:
    """The gateway task ends on close; anything else (a refused intent, a revoked token) is logged."""
    if not task.cancelled() and task.exception() is not None:
        log.error("discord gateway stopped", exc_info=task.exception())


def _token(settings: Settings) -> str:
    if settings.discord_token is None:
        raise ValueError("DISCORD_TOKEN is not set.")
    return settings.discord_token.get_secret_value()


class DiscordAdapter:
    """Runs the Discord client and delivers results to Discord.

    Args:
        settings: The bot's settings (token, endpoints, limits, allowlists).
        service: The shared command layer.
        guild_ready_timeout: Passed to discord.py (seconds to wait for guilds after READY).
        clock: Naive-UTC now, for the interaction-token expiry.
    """

    platform = PLATFORM

    def __init__(
        self,
        settings: Settings,
        service: SongService,
        *,
        guild_ready_timeout: float = 2.0,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.service = service
        self.client = SongbotClient(settings, service, guild_ready_timeout=guild_ready_timeout)
        self.messenger = DiscordMessenger(self.client, clock)
        self._connection: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Log in (a bad token fails here) and open the gateway in the background.

        Delivery needs only REST (interaction webhooks, channel messages), so the adapter is usable as
        soon as the login succeeded; discord.py reconnects the gateway on its own.
        """
        configure_endpoints(self.settings)
        await self.client.login(_token(self.settings))
        self._connection = asyncio.create_task(self.client.connect(reconnect=True), name="discord-gateway")
        self._connection.add_done_callback(_log_gateway_end)

    async def stop(self) -> None:
        """Close the gateway and the HTTP session; safe to call twice."""
        await self.client.close()
        if self._connection is not None:
            with contextlib.suppress(asyncio.CancelledError, discord.DiscordException, OSError):
                await self._connection
            self._connection = None
        # Let event handlers that discord.py scheduled while closing (on_disconnect, ...) run now,
        # not be dropped unstarted when the event loop ends.
        await asyncio.sleep(0)

    async def show_status(self, delivery: DeliveryView, text: str) -> str | None:
        """See `bot.core.delivery.Messenger`."""
        return await self.messenger.show_status(delivery, text)

    async def send_result(self, delivery: DeliveryView, result: ResultView) -> None:
        """See `bot.core.delivery.Messenger`."""
        await self.messenger.send_result(delivery, result)

    async def send_error(self, delivery: DeliveryView, text: str) -> None:
        """See `bot.core.delivery.Messenger`."""
        await self.messenger.send_error(delivery, text)

    async def send_description(self, delivery: DeliveryView, described: Described) -> None:
        """See `bot.core.delivery.Messenger`."""
        await self.messenger.send_description(delivery, described)

    async def send_notice(self, delivery: DeliveryView, text: str) -> None:
        """See `bot.core.delivery.Messenger`."""
        await self.messenger.send_notice(delivery, text)

    async def send_answer(self, delivery: DeliveryView, answer: Answer) -> None:
        """See `bot.core.delivery.Messenger`."""
        await self.messenger.send_answer(delivery, answer)


async def sync_commands(settings: Settings, guild_id: int | None) -> int:
    """Register the commands with Discord: in one guild (instant) or globally. Returns how many.

    Logs in over REST only (no gateway). `songbot discord sync [--guild ID]` calls this.
    """
    configure_endpoints(settings)
    client = SongbotClient(settings, None)
    try:
        await client.login(_token(settings))
        if guild_id is None:
            synced = await client.tree.sync()
        else:
            guild = discord.Object(guild_id)
            client.tree.copy_global_to(guild=guild)
            synced = await client.tree.sync(guild=guild)
    finally:
        await client.close()
    log.info("discord commands synced", extra={"count": len(synced), "guild": guild_id})
    return len(synced)
