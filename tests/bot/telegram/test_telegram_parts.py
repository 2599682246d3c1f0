"""The small pieces of the adapter: outgoing text, callback data, finding a cover's source."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram import Message

from bot.telegram import adapter
from bot.telegram.keyboards import history_keyboard, parse_callback, result_keyboard
from bot.telegram.media import find_source
from bot.telegram.text import caption, chunks, defang

CHAT = {"id": 5, "type": "private", "first_name": "Ann"}
USER = {"id": 5, "is_bot": False, "first_name": "Ann"}


def message(**fields: Any) -> Message:
    return Message.de_json({"message_id": 1, "date": 0, "chat": CHAT, "from": USER, **fields}, None)


def test_chunks_keep_every_character_within_the_limit() -> None:
    text = "a" * 5000 + "\n" + "line\n" * 900
    parts = chunks(text, limit=4096)
    assert "".join(parts) == text and all(len(part) <= 4096 for part in parts)
    assert chunks("short") == ["short"]


def test_caption_keeps_the_id_and_seed_line() -> None:
    long = "🎵 Title\nStyle: " + "x" * 2000 + "\n#12 · seed 7"
    cut = caption(long)
    assert len(cut) <= 1024 and cut.endswith("#12 · seed 7")
    assert caption("fits") == "fits"


def test_mentions_are_defused() -> None:
    assert "@everyone" not in defang("hi @everyone") and defang("no at sign") == "no at sign"


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        ("rr:12", ("rr", 12)),
        ("ly:3", ("ly", 3)),
        ("rp:4", ("rp", 4)),
        ("ex:5", ("ex", 5)),
        ("rr:", None),
        ("xx:1", None),
        (None, None),
        ("rr:1a", None),
        ("rp:١٢", None),
    ],
)
def test_callback_data(data: str | None, parsed: tuple[str, int] | None) -> None:
    assert parse_callback(data) == parsed


def test_keyboards_carry_ids_only() -> None:
    rows = result_keyboard(42).inline_keyboard
    assert [b.callback_data for b in rows[0]] == ["rr:42", "ly:42"]
    assert [b.callback_data for b in rows[1]] == ["rp:42", "ex:42"]
    keyboard = history_keyboard([(1, "x" * 100), (2, "two")])
    assert keyboard is not None and [r[0].callback_data for r in keyboard.inline_keyboard] == ["rr:1", "rr:2"]
    assert all(len(str(r[0].callback_data).encode()) <= 64 for r in keyboard.inline_keyboard)
    assert history_keyboard([]) is None


def test_source_from_reply_or_own_attachment() -> None:
    audio = {
        "file_id": "A",
        "file_unique_id": "a",
        "duration": 3,
        "mime_type": "audio/mpeg",
        "file_size": 10,
        "file_name": "x.mp3",
    }
    voice = {"file_id": "V", "file_unique_id": "v", "duration": 3, "file_size": 20}
    note = {"file_id": "N", "file_unique_id": "n", "duration": 3, "length": 240, "file_size": 30}
    document = {"file_id": "D", "file_unique_id": "d", "mime_type": "image/png", "file_name": "cat.png"}
    reply = {"message_id": 0, "date": 0, "chat": CHAT, "from": USER}
    assert find_source(message(text="/cover", reply_to_message={**reply, "audio": audio})) == (
        find_source(message(caption="/cover", audio=audio))
    )
    found = find_source(message(text="/cover", reply_to_message={**reply, "voice": voice}))
    assert found is not None and (found.file_id, found.mime, found.size_bytes) == ("V", "audio/ogg", 20)
    found = find_source(message(text="/cover", reply_to_message={**reply, "video_note": note}))
    assert found is not None and (found.file_id, found.mime) == ("N", "video/mp4")
    found = find_source(message(text="/cover", reply_to_message={**reply, "document": document}))
    assert found is not None and (found.mime, found.filename, found.size_bytes) == ("image/png", "cat.png", None)
    assert find_source(message(text="/cover")) is None
    assert find_source(message(text="/cover", reply_to_message={**reply, "text": "just words"})) is None


async def test_chat_action_is_repeated_while_the_block_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    actions: list[tuple[int, str]] = []

    class ActionBot:
        async def send_chat_action(self, chat_id: int, action: str, **kwargs: Any) -> bool:
            actions.append((chat_id, action))
            return True

    monkeypatch.setattr(adapter, "CHAT_ACTION_EVERY_S", 0.05)
    async with adapter._chat_action(ActionBot(), 7, "upload_voice", None):  # type: ignore[arg-type]
        assert actions == [(7, "upload_voice")]  # shown before the block starts
        await asyncio.sleep(0.3)
    shown = len(actions)
    await asyncio.sleep(0.15)
    assert shown >= 3 and len(actions) == shown  # repeated during the block, and stopped after it
