"""Fixtures for the Discord tests: the loopback fake Discord, with discord.py pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest
import yarl

from tests.fakes.discord_api import FakeDiscord


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A fake Discord on 127.0.0.1; discord.py's REST base and gateway URL point at it for the test."""
    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        yield fake
        assert fake.unhandled == [], f"the client called routes the fake does not serve: {fake.unhandled}"
        assert fake.errors == [], "the fake itself failed:\n" + "\n".join(fake.errors)
