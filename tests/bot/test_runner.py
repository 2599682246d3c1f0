"""The bot process's composition root: a platform that refuses to start is one clear line, no token."""

import asyncio
import logging
import os
import time

import pytest

from bot.core.service import SongService
from bot.runner import AdapterFailed, configured_platforms, run_bot
from tests.bot.telegram.telegram_stack import telegram_settings
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import make_settings

WRONG = "999999:THIS-IS-NOT-THE-RIGHT-TOKEN-abcdefghij"


async def test_a_rejected_token_fails_with_a_sentence_and_is_never_logged(tmp_path, caplog):
    api = FakeTelegramAPI()
    await api.start()
    try:
        settings = telegram_settings(api, tmp_path, telegram_token=WRONG)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(AdapterFailed, match="No chat platform could be started"):
            await asyncio.wait_for(run_bot(settings, asyncio.Event()), timeout=30)
    finally:
        await api.stop()
    assert "could not start telegram" in caplog.text
    assert WRONG not in caplog.text and WRONG.split(":")[1] not in caplog.text


def test_platforms_follow_the_tokens(tmp_path):
    assert configured_platforms(make_settings(tmp_path)) == []
    both = make_settings(tmp_path, telegram_token="1:a", discord_token="x.y.z")
    assert configured_platforms(both) == ["telegram", "discord"]


async def test_the_bot_process_sweeps_expired_uploads(tmp_path):
    service = SongService.from_settings(make_settings(tmp_path, upload_retention_days=7))
    old = service.blobs.path(service.blobs.put_upload(b"RIFF", ".wav"))
    eight_days_ago = time.time() - 8 * 86400
    os.utime(old, (eight_days_ago, eight_days_ago))
    fresh = service.blobs.path(service.blobs.put_upload(b"RIFF", ".wav"))
    stop = asyncio.Event()
    bot = asyncio.create_task(run_bot(service.settings, stop, service))
    for _ in range(500):
        if not old.exists():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(bot, timeout=10)
    assert not old.exists() and fresh.exists()
