"""The status board: edits coalesced and spaced per chat, never repeated."""

from __future__ import annotations

import itertools
import time
from types import SimpleNamespace
from typing import Any

from telegram.error import BadRequest

from bot.telegram.status import StatusBoard

INTERVAL_S = 0.2


class RecordingBot:
    """Just the two Bot methods the board uses, recording what they were asked."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.sent: list[tuple[int, str, dict[str, Any]]] = []
        self.edits: list[tuple[float, int, int, str]] = []
        self.fail_with = fail_with

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> SimpleNamespace:
        self.sent.append((chat_id, text, kwargs))
        return SimpleNamespace(message_id=len(self.sent))

    async def edit_message_text(self, text: str, *, chat_id: int, message_id: int) -> None:
        self.edits.append((time.monotonic(), chat_id, message_id, text))
        if self.fail_with is not None:
            raise self.fail_with


async def test_a_burst_of_updates_ends_on_the_latest_text_with_few_spaced_edits() -> None:
    bot = RecordingBot()
    board = StatusBoard(bot, INTERVAL_S)  # type: ignore[arg-type]
    message_id = await board.create(7, "queued", reply_to=3)
    for percent in range(0, 101, 5):
        board.update(7, message_id, f"generating {percent}%")
    await board.close(timeout_s=5)
    texts = [text for *_, text in bot.edits]
    assert texts[-1] == "generating 100%" and len(texts) <= 3
    assert all(a != b for a, b in itertools.pairwise(["queued", *texts]))
    times = [at for at, *_ in bot.edits]
    assert all(later - earlier >= INTERVAL_S * 0.95 for earlier, later in itertools.pairwise(times))
    assert bot.sent[0][2]["reply_parameters"].message_id == 3


async def test_the_text_already_shown_is_never_sent_again() -> None:
    bot = RecordingBot()
    board = StatusBoard(bot, INTERVAL_S)  # type: ignore[arg-type]
    message_id = await board.create(7, "queued")
    board.update(7, message_id, "queued")
    await board.edit_now(7, message_id, "queued")
    await board.close()
    assert bot.edits == []


async def test_two_messages_in_one_chat_share_the_pace_and_both_arrive() -> None:
    bot = RecordingBot()
    board = StatusBoard(bot, INTERVAL_S)  # type: ignore[arg-type]
    first, second = await board.create(7, "a0"), await board.create(7, "b0")
    board.update(7, first, "a1")
    board.update(7, second, "b1")
    board.update(8, 1, "other chat")  # another chat is not held up by chat 7
    await board.close(timeout_s=5)
    finals = {(chat, message): text for _, chat, message, text in bot.edits}
    assert finals == {(7, first): "a1", (7, second): "b1", (8, 1): "other chat"}
    chat7 = [at for at, chat, *_ in bot.edits if chat == 7]
    assert chat7[1] - chat7[0] >= INTERVAL_S * 0.95


async def test_not_modified_counts_as_shown() -> None:
    bot = RecordingBot(fail_with=BadRequest("Message is not modified: specified new message content ..."))
    board = StatusBoard(bot, INTERVAL_S)  # type: ignore[arg-type]
    await board.edit_now(7, 1, "done")
    await board.edit_now(7, 1, "done")
    assert len(bot.edits) == 1
