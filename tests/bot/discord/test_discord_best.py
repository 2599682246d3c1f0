"""best=N on Discord: the real discord.py client against the fake Discord and the engine (sketch backend)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.queue.outbox import DONE
from tests.bot.discord.discord_stack import Stack, final_edit, running_stack
from tests.bot.discord.test_discord_edits import refusal, song_id_of
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord


@pytest.fixture
async def stack(tmp_path: Path, fake_discord: FakeDiscord) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, fake_discord, max_pending_per_user=8) as built:
        yield built


async def test_the_best_option_posts_one_song_of_three_takes(stack: Stack) -> None:
    fake, service = stack.fake, stack.service
    options = [p.option("description", "calm piano"), p.option("duration", 20), p.option("seed", 40)]
    record = await fake.send_slash("song", [*options, p.option("best", 3)], fake.member("ann"))
    await final_edit(fake, record)
    assert record.original is not None
    winner = song_id_of(record.original)
    assert "🏆 best of 3 · score" in record.original["content"]
    await fake.wait_for(lambda: (row := service.outbox.for_job(winner)) is not None and row.state == DONE)
    assert not [m for m in fake.channel_messages if m["attachments"]]  # the other takes are not posted
    takes = [service.library.get(song_id) for song_id in (1, 2, 3)]
    assert all(take is not None and take.score is not None for take in takes)
    assert max(takes, key=lambda take: (take.score.total, -take.job_id)).job_id == winner


async def test_best_with_takes_is_one_private_sentence(stack: Stack) -> None:
    fake = stack.fake
    both = await fake.send_slash(
        "song", [p.option("description", "rain"), p.option("takes", 2), p.option("best", 2)], fake.member("bob")
    )
    assert await refusal(fake, both) == "Use takes= for several songs or best= for the best of several takes, not both."
    assert sum(stack.service.queue.counts().values()) == 0
