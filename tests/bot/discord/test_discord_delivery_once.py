"""A bot process killed between posting a result and marking it: the next one's post is dropped by Discord.

The real delivery loop and outbox, the Discord messenger (REST only) and the fake Discord, which
honours `enforce_nonce` as Discord does. The interaction token has expired, so the result goes to
the channel as a new message: the path where a repeat would be a second post.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from bot.core.delivery import MAX_UPLOAD_RESENDS, DeliveryLoop
from bot.core.service import SongService
from bot.discord.adapter import configure_endpoints
from bot.discord.client import SongbotClient
from bot.discord.messenger import DiscordMessenger
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import JobSpec
from storage.contract.types import DeliveryTarget, NewTrack, UserRef
from storage.media.audio import encode_mp3
from storage.queue.outbox import DONE
from tests.bot.discord.discord_stack import stack_settings
from tests.fakes.discord_api import BOT_TOKEN, FakeDiscord
from tests.helpers import Killed, ManualClock

REQUESTER = "123456789012345678"


START = dt.datetime(2026, 11, 28, 12, 0, 0)


@pytest.fixture
async def parts(
    tmp_path: Path, fake_discord: FakeDiscord
) -> AsyncIterator[tuple[SongService, DiscordMessenger, ManualClock]]:
    settings = stack_settings(tmp_path, fake_discord)
    configure_endpoints(settings)
    clock = ManualClock(START)
    service = SongService.from_settings(settings)
    service.clock = clock
    client = SongbotClient(settings, None)
    await client.login(BOT_TOKEN)
    yield service, DiscordMessenger(client, clock=clock), clock
    await client.close()


def finished_song(service: SongService, fake: FakeDiscord, clock: ManualClock) -> int:
    """A song queued from Discord (its interaction token long expired) and made."""
    user = service.accounts.ensure(UserRef("discord", REQUESTER, "Ann"), clock())
    target = DeliveryTarget(
        "discord",
        fake.channel["id"],
        interaction_token="expired-token",
        token_expires_at=clock() - dt.timedelta(minutes=20),
        extra={"application_id": fake.app_id, "requester_id": REQUESTER, "guild_id": fake.guild_id},
    )
    job = service.queue.submit(user.id, "song", JobSpec(caption="rain", duration_s=10), 5, clock(), target)
    [claimed] = service.queue.claim("engine", 1, clock(), 30)
    relative = service.blobs.track_relative(job.id, 1)
    encode_mp3(np.zeros((48_000, 2), np.float32) + 0.1, service.blobs.path(relative))
    track = NewTrack(relative, 1.0, 5, "0" * 64, "Rain", "rain", "", TrackMeta(), ModelInfo(backend="sketch"))
    service.queue.complete(claimed, "engine", track, clock())
    return job.id


def songs_posted(fake: FakeDiscord) -> list[dict]:
    return [m for m in fake.channel_messages if m.get("attachments")]


async def test_a_kill_between_post_and_mark_leaves_one_post(
    fake_discord: FakeDiscord, parts: tuple[SongService, DiscordMessenger, ManualClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, messenger, clock = parts
    job_id = finished_song(service, fake_discord, clock)

    first = DeliveryLoop(service, owner="bot-1", clock=clock)
    first.register(messenger)

    def killed(*args: object) -> bool:
        raise Killed

    mark_done = service.outbox.mark_done
    monkeypatch.setattr(service.outbox, "mark_done", killed)
    with pytest.raises(Killed):
        await first.run_once()
    assert len(songs_posted(fake_discord)) == 1
    monkeypatch.setattr(service.outbox, "mark_done", mark_done)  # (undo() would also undo the fake's set-up)

    # The next bot process takes the row once the dead one's lease is over, and posts again.
    clock.now += dt.timedelta(seconds=service.settings.delivery_lease_s + 1)
    second = DeliveryLoop(service, owner="bot-2", clock=clock)
    second.register(messenger)
    assert await second.run_once() == 1
    [posted] = songs_posted(fake_discord)
    assert posted["nonce"] == f"songbot-{service.outbox.for_job(job_id).id}-r"
    delivery = service.outbox.for_job(job_id)
    assert delivery is not None and delivery.state == DONE and delivery.resends == 1
    assert len(fake_discord.calls_to("POST", r"/channels/\d+/messages$")) == 2  # two posts asked, one kept


@pytest.mark.parametrize("interruptions", [1, 2, 5])
async def test_a_post_interrupted_any_number_of_times_ends_delivered_or_told(
    fake_discord: FakeDiscord,
    parts: tuple[SongService, DiscordMessenger, ManualClock],
    monkeypatch: pytest.MonkeyPatch,
    interruptions: int,
) -> None:
    service, messenger, clock = parts
    job_id = finished_song(service, fake_discord, clock)
    mark_done = service.outbox.mark_done

    def killed(*args: object) -> bool:
        raise Killed

    for n in range(interruptions):
        loop = DeliveryLoop(service, owner=f"bot-{n}", clock=clock)
        loop.register(messenger)
        monkeypatch.setattr(service.outbox, "mark_done", killed)
        with pytest.raises(Killed):
            await loop.run_once()
        monkeypatch.setattr(service.outbox, "mark_done", mark_done)
        clock.now += dt.timedelta(seconds=service.settings.delivery_lease_s + 1)
    last = DeliveryLoop(service, owner="bot-last", clock=clock)
    last.register(messenger)
    await last.run_once()

    delivery = service.outbox.for_job(job_id)
    assert delivery is not None
    assert len(songs_posted(fake_discord)) == 1  # the nonce keeps one copy, however often it was sent
    told = [m for m in fake_discord.channel_messages if "/history" in m.get("content", "")]
    if interruptions <= MAX_UPLOAD_RESENDS:
        assert (delivery.state, told) == (DONE, [])
    else:
        assert delivery.state == "told" and len(told) == 1
