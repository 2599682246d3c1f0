"""The Discord messenger alone (REST only, no gateway): the token's expiry decided by the clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from bot.core.service import ResultView
from bot.discord.adapter import configure_endpoints
from bot.discord.client import SongbotClient
from bot.discord.messenger import DiscordMessenger
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.types import DeliveryView, TrackView
from storage.media.audio import encode_mp3
from tests.bot.discord.discord_stack import stack_settings
from tests.fakes.discord_api import BOT_TOKEN, FakeDiscord

NOW = dt.datetime(2026, 11, 21, 12, 0, 0)


@pytest.fixture
async def messenger(tmp_path: Path, fake_discord: FakeDiscord) -> AsyncIterator[DiscordMessenger]:
    configure_endpoints(stack_settings(tmp_path, fake_discord))
    client = SongbotClient(stack_settings(tmp_path, fake_discord), None)
    await client.login(BOT_TOKEN)
    yield DiscordMessenger(client, clock=lambda: NOW)
    await client.close()


def delivery(fake: FakeDiscord, expires_in_s: float, status_message_id: str | None = "@original") -> DeliveryView:
    return DeliveryView(
        id=1,
        job_id=7,
        platform="discord",
        chat_id=fake.channel["id"],
        reply_to_message_id=None,
        status_message_id=status_message_id,
        interaction_token="gone",
        token_expires_at=NOW + dt.timedelta(seconds=expires_in_s),
        extra={
            "application_id": fake.app_id,
            "requester_id": "123456789012345678",
            "guild_id": fake.guild_id,
            "filesize_limit": 10 * 1024 * 1024,
        },
        state="pending",
        last_status_text=None,
        last_status_at=None,
        attempts=0,
    )


def result(tmp_path: Path) -> ResultView:
    path = encode_mp3(np.zeros((48_000, 2), np.float32) + 0.1, tmp_path / "7.mp3")
    track = TrackView(
        job_id=7,
        blob_path="7.mp3",
        format="mp3",
        duration_s=1.0,
        seed=5,
        sha256="",
        title="t",
        caption="c",
        lyrics="",
        meta=TrackMeta(),
        plan=None,
        model=ModelInfo(),
        notice=None,
        created_at=NOW,
    )
    return ResultView(7, track, "🎵 t @everyone\n#7 · seed 5", path)


async def test_a_token_about_to_expire_is_not_used(
    tmp_path: Path, fake_discord: FakeDiscord, messenger: DiscordMessenger
) -> None:
    soon = delivery(fake_discord, expires_in_s=30)  # inside the safety margin
    first = await messenger.show_status(soon, "⏳ #7 queued")
    assert first is not None and first.isdigit()
    assert await messenger.show_status(delivery(fake_discord, 30, first), "🎶 #7 generating… 50%") == first
    assert [m["content"] for m in fake_discord.channel_messages] == ["🎶 #7 generating… 50%"]
    await messenger.send_result(delivery(fake_discord, 30, first), result(tmp_path))
    [posted] = fake_discord.channel_messages
    assert posted["content"].startswith("<@123456789012345678> 🎵 t @\u200beveryone")
    assert posted["attachments"][0]["filename"] == "song-7.mp3"
    assert fake_discord.calls_to("PATCH", "/webhooks/") == []  # the interaction webhook was never tried


async def test_an_error_after_expiry_mentions_only_the_requester(
    fake_discord: FakeDiscord, messenger: DiscordMessenger
) -> None:
    await messenger.send_error(delivery(fake_discord, -5, None), "⚠️ Song #7 failed: <@&99999999999999999> boom.")
    [posted] = fake_discord.channel_messages
    assert posted["content"] == "<@123456789012345678> ⚠️ Song #7 failed: <@\u200b&99999999999999999> boom."
    assert posted["allowed_mentions"]["parse"] == [] and posted["allowed_mentions"]["users"] == [123456789012345678]


class RecordingWebhook:
    """Stands in for the interaction webhook: records what the messenger asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    async def delete_message(self, message_id: object) -> None:
        self.calls.append(("delete", {"id": message_id}))

    async def send(self, content: str, **kwargs: object) -> None:
        self.calls.append(("send", {"content": content, **kwargs}))


async def test_the_sentence_for_an_undelivered_song_keeps_the_original_response(
    fake_discord: FakeDiscord, messenger: DiscordMessenger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The original response may hold the song from an interrupted post: only a failure replaces it.
    webhook = RecordingWebhook()
    monkeypatch.setattr(messenger, "_webhook", lambda delivery: webhook)
    await messenger.send_notice(delivery(fake_discord, expires_in_s=600), "Song #7 is ready: /history has it.")
    assert [(kind, args.get("ephemeral")) for kind, args in webhook.calls] == [("send", True)]
