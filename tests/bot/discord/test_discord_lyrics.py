"""/lyrics and 📝 on Discord end to end: the real discord.py client against the fake Discord, engine in a thread.

The answer is private: the timed lines (`[mm:ss.xx]` before each) and the .lrc as an attachment; a song
stored before timing was kept is timed on request, and the delivery loop edits the private answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bot.discord.discord_stack import Stack, final_edit, running_stack
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.helpers import make_old_song


@pytest.fixture
async def stack(tmp_path: Path, fake_discord: FakeDiscord) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, fake_discord) as built:
        yield built


async def sung_song(stack: Stack, user: dict) -> int:
    options = [p.option("description", "morning song"), p.option("lyrics", "hello morning"), p.option("bpm", 120)]
    record = await stack.fake.send_slash("song", [p.option("duration", 12), *options], user)
    await final_edit(stack.fake, record)
    return int(record.original["content"].split("#")[-1].split(" ")[0])


async def test_lyrics_come_privately_timed_with_an_lrc_attachment(stack: Stack) -> None:
    user = stack.fake.member("alice")
    song_id = await sung_song(stack, user)
    record = await stack.fake.send_slash("lyrics", [p.option("song_id", song_id)], user)
    edit = await final_edit(stack.fake, record)
    assert record.ephemeral and "[00:02.00]hello morning" in edit.body["content"]
    [lrc] = edit.files
    assert lrc.filename == f"song-{song_id}.lrc" and b"[00:02.00]hello morning" in lrc.data


async def test_an_old_song_is_timed_on_request_and_the_answer_replaces_the_acknowledgement(stack: Stack) -> None:
    user = stack.fake.member("bob")
    song_id = await sung_song(stack, user)
    make_old_song(stack.service.queue.engine, stack.service.blobs, song_id)
    record = await stack.fake.send_slash("lyrics", [p.option("song_id", song_id)], user)
    edit = await final_edit(stack.fake, record)
    assert record.ephemeral and b"[00:02.00]hello morning" in edit.files[0].data
    assert any(text.startswith(f"Timing the lyrics of #{song_id}") for text in record.texts())
    assert stack.service.library.get(song_id).timing is not None
