"""Allowlists and admin commands through the real Telegram stack (no songs are made here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bot.telegram.telegram_stack import RunningBot, start_bot, telegram_settings
from tests.fakes.telegram_api import BOT_USER, FakeTelegramAPI, FakeUser, group_chat

ANN, BOB, OPS = FakeUser(101, "Ann"), FakeUser(102, "Bob"), FakeUser(103, "Ops")
NOT_ALLOWED = "Sorry, this bot is not open to you here."


@pytest.fixture
async def guarded(api: FakeTelegramAPI, tmp_path: Path) -> AsyncIterator[RunningBot]:
    settings = telegram_settings(
        api,
        tmp_path,
        allowed_user_ids=frozenset({"telegram:101"}),
        admin_ids=frozenset({"telegram:103"}),
        allowed_chat_ids=frozenset({"-900"}),
    )
    bot = await start_bot(api, settings)
    yield bot
    await bot.stop()


async def reply_to(api: FakeTelegramAPI, user: FakeUser, text: str) -> str:
    mark = api.mark()
    api.user_message(user, text)
    return str((await api.wait_for("sendMessage", chat_id=user.id, after=mark)).params["text"])


async def test_allowlists_and_admin_commands(api: FakeTelegramAPI, guarded: RunningBot) -> None:
    assert await reply_to(api, BOB, "/song let me in") == NOT_ALLOWED
    message = api.user_message(BOB, "hello")
    query = api.press(BOB, message, "rr:1")
    await api.wait_until(lambda: query in api.answered)
    assert api.answered[query]["text"] == NOT_ALLOWED and api.answered[query]["show_alert"] is True

    assert await reply_to(api, ANN, "/admin stats") == "Only the bot's operators can do that."
    assert (await reply_to(api, OPS, "/admin pause")).startswith("The queue is paused")
    mark = api.mark()
    api.user_message(ANN, "/song while paused")
    status = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)
    key = (ANN.id, status.result["message_id"])
    await api.wait_until(lambda: "paused" in api.edits[key][-1])  # the acknowledgement became the refusal
    assert len(api.edits[key]) == 2
    assert await reply_to(api, OPS, "/admin resume") == "The queue is running again."
    assert (await reply_to(api, OPS, "/admin stats")).endswith("Queue running.")
    # A quota that is not a number is one sentence, and the quota stays as it was.
    assert await reply_to(api, OPS, "/admin quota telegram:101 2") == "Daily quota of telegram:101 is now 2."
    assert await reply_to(api, OPS, "/admin quota telegram:101 abc") == (
        "The quota must be a number of songs a day from 0 (no limit) to 100000, or 'default', not 'abc'."
    )
    assert guarded.service.accounts.find("telegram", "101").daily_quota == 2

    # Groups: only the allowed one is served, and unknown groups get no answer at all.
    api.user_message(ANN, "/song in a strange group", chat=group_chat(-901))
    api.user_message(ANN, f"/song@{BOT_USER['username']} in our group", chat=group_chat(-900))
    await api.wait_for("sendMessage", chat_id=-900)
    assert api.calls_of("sendMessage", chat_id=-901, ok_only=False) == []

    # The admin sees /admin in the command menu of their chat; everybody else does not.
    menus = {
        str(c.params.get("scope", {}).get("chat_id", "all")): c.params["commands"]
        for c in api.calls_of("setMyCommands")
    }
    assert "admin" in [c["command"] for c in menus["103"]] and "admin" not in [c["command"] for c in menus["all"]]
