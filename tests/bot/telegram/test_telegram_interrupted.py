"""A result post interrupted again and again on Telegram ends delivered or told, never silent.

The real delivery loop, outbox and Telegram adapter against the fake Bot API. Each interrupted bot
process dies right after Telegram took the audio and before the row was marked (the case where a
resend makes a second copy): every resend says it may be a repeat, and past `MAX_UPLOAD_RESENDS` the
user gets one sentence that points to /history instead of yet another upload.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import numpy as np
import pytest
from telegram.error import TimedOut

from bot.core.delivery import MAX_UPLOAD_RESENDS, REPEAT_NOTE, DeliveryLoop
from bot.core.service import SongService
from bot.telegram.adapter import TelegramAdapter
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import JobSpec
from storage.contract.types import DeliveryTarget, NewTrack, UserRef
from storage.media.audio import encode_mp3
from storage.settings import Settings
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import Killed, ManualClock

CHAT = 501


START = dt.datetime(2026, 12, 6, 12, 0, 0)


@pytest.fixture
async def adapter(settings: Settings) -> AsyncIterator[TelegramAdapter]:
    service = SongService.from_settings(settings)
    telegram = TelegramAdapter(settings, service)
    await telegram.application.initialize()
    yield telegram
    await telegram.application.shutdown()


def finished_song(service: SongService, clock: ManualClock) -> int:
    """A song queued from Telegram and made (a real, short MP3)."""
    user = service.accounts.ensure(UserRef("telegram", str(CHAT), "Dana"), clock())
    target = DeliveryTarget("telegram", str(CHAT))
    job = service.queue.submit(user.id, "song", JobSpec(caption="rain", duration_s=10), 5, clock(), target)
    [claimed] = service.queue.claim("engine", 1, clock(), 30)
    relative = service.blobs.track_relative(job.id, 1)
    encode_mp3(np.zeros((48_000, 2), np.float32) + 0.1, service.blobs.path(relative))
    track = NewTrack(relative, 1.0, 5, "0" * 64, "Rain", "rain", "", TrackMeta(), ModelInfo(backend="sketch"))
    service.queue.complete(claimed, "engine", track, clock())
    return job.id


async def post_and_die(service: SongService, adapter: TelegramAdapter, clock: ManualClock, owner: str) -> None:
    """One delivery pass of a process that dies after Telegram answered and before the mark."""
    loop = DeliveryLoop(service, owner=owner, clock=clock)
    loop.register(adapter)
    mark_done = service.outbox.mark_done

    def killed(*args: object) -> bool:
        raise Killed

    service.outbox.mark_done = killed  # type: ignore[method-assign]
    try:
        with pytest.raises(Killed):
            await loop.run_once()
    finally:
        service.outbox.mark_done = mark_done  # type: ignore[method-assign]
    clock.now += dt.timedelta(seconds=service.settings.delivery_lease_s + 1)  # the dead one's lease runs out


@pytest.mark.parametrize("interruptions", [1, 2, 5])
async def test_an_interrupted_post_ends_delivered_or_told(
    api: FakeTelegramAPI, settings: Settings, adapter: TelegramAdapter, interruptions: int
) -> None:
    clock = ManualClock(START)
    service = SongService.from_settings(settings)
    job_id = finished_song(service, clock)
    for n in range(interruptions):
        await post_and_die(service, adapter, clock, f"bot-{n}")
    last = DeliveryLoop(service, owner="bot-last", clock=clock)
    last.register(adapter)
    await last.run_once()

    audios = api.calls_of("sendAudio", chat_id=CHAT)
    notes = [REPEAT_NOTE in call.params["caption"] for call in audios]
    told = [call for call in api.calls_of("sendMessage", chat_id=CHAT) if "/history" in call.params["text"]]
    delivery = service.outbox.for_job(job_id)
    assert delivery is not None
    # The first post had no reason to doubt; every later one says it may be a repeat.
    assert notes == [False] + [True] * min(interruptions, MAX_UPLOAD_RESENDS)
    if interruptions <= MAX_UPLOAD_RESENDS:
        assert (delivery.state, told) == ("done", [])
    else:
        assert delivery.state == "told" and len(told) == interruptions - MAX_UPLOAD_RESENDS
        assert f"#{job_id}" in told[-1].params["text"]


async def test_an_upload_that_times_out_is_resent_as_a_possible_repeat(
    api: FakeTelegramAPI, settings: Settings, adapter: TelegramAdapter
) -> None:
    clock = ManualClock(START)
    service = SongService.from_settings(settings)
    job_id = finished_song(service, clock)
    loop = DeliveryLoop(service, owner="bot", clock=clock)
    loop.register(adapter)
    upload = adapter._upload

    async def timed_out(*args: object) -> None:
        raise TimedOut  # our side gave up waiting: Telegram may have the audio all the same

    adapter._upload = timed_out  # type: ignore[method-assign]
    await loop.run_once()
    adapter._upload = upload  # type: ignore[method-assign]
    clock.now += dt.timedelta(minutes=1)
    await loop.run_once()
    [audio] = api.calls_of("sendAudio", chat_id=CHAT)
    delivery = service.outbox.for_job(job_id)
    assert delivery is not None and delivery.state == "done"
    assert audio.params["caption"].startswith(REPEAT_NOTE)
