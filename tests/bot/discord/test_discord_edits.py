"""Takes, repaint, extend and songs like a clip on Discord: the real discord.py client against the fake
Discord and the real engine (sketch backend); every bad input is one private sentence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tests.bot.discord.discord_stack import Stack, custom_ids, decode, final_edit, running_stack, wav_bytes
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_interactions import InteractionRecord

EPHEMERAL = 64
RATE = 48_000


@pytest.fixture
async def stack(tmp_path: Path, fake_discord: FakeDiscord) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, fake_discord, max_pending_per_user=8) as built:
        yield built


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = float(((reference - other) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(float((reference**2).sum()) / noise)


def song_id_of(message: dict) -> int:
    return int(message["content"].split("#")[-1].split(" ")[0])


async def refusal(fake: FakeDiscord, record: InteractionRecord) -> str:
    """The one private sentence an interaction was answered with."""

    def answered() -> dict | None:
        if record.followups:  # deferred publicly first: the "thinking…" message was replaced
            return record.followups[0]
        original = record.original
        return original if original is not None and original.get("flags", 0) & EPHEMERAL else None

    message = await fake.wait_for(answered)
    return str(message["content"])


async def test_takes_repaint_extend_and_like_by_commands_and_buttons(stack: Stack) -> None:
    fake = stack.fake
    user = fake.member("ann")
    options = [p.option("description", "calm piano"), p.option("duration", 20), p.option("seed", 40)]
    record = await fake.send_slash("song", [*options, p.option("takes", 2)], user)
    first = await final_edit(fake, record)
    message = record.original
    assert message is not None
    song_id = song_id_of(message)
    base, _ = decode(first.files[0].data)
    take_two = await fake.wait_for(lambda: next((m for m in fake.channel_messages if m["attachments"]), None), 60)
    assert "seed 41" in take_two["content"] and "seed 40" in message["content"]
    assert custom_ids(message)[2:] == [f"songbot:repaint:{song_id}", f"songbot:extend:{song_id}"]

    repainted = await fake.send_slash(
        "repaint", [p.option("song_id", song_id), p.option("part", "0:08-0:12"), p.option("caption", "a solo")], user
    )
    new, _ = decode((await final_edit(fake, repainted)).files[0].data)
    assert new.shape == base.shape
    assert snr_db(base[: int(7.5 * RATE)], new[: int(7.5 * RATE)]) >= 30
    assert snr_db(base[int(12.5 * RATE) :], new[int(12.5 * RATE) :]) >= 30
    # The sketch's new take of the part shares the song's tempo, key and kick, so it differs by about 1-16 dB.
    assert snr_db(base[int(8.5 * RATE) : int(11.5 * RATE)], new[int(8.5 * RATE) : int(11.5 * RATE)]) < 25

    # ✏️ opens a modal for the part; ➕ extends by half a minute.
    asked = await fake.click(f"songbot:repaint:{song_id}", message, user)
    modal = await fake.wait_for(lambda: asked.modal)
    submitted = await fake.submit_modal(modal["custom_id"], {"span": "2-4", "caption": ""}, user)
    status = await fake.wait_for(lambda: next((t for t in submitted.texts() if "#" in t), None))
    job = await asyncio.to_thread(stack.service.queue.get, int(status.split("#")[1].split(" ")[0]))
    assert job is not None and job.kind == "repaint" and job.spec.edit is not None
    assert (job.spec.edit.start_s, job.spec.edit.end_s) == (2.0, 4.0)
    extended = await fake.click(f"songbot:extend:{song_id}", message, user)
    longer, _ = decode((await final_edit(fake, extended)).files[0].data)
    assert abs(longer.shape[0] - base.shape[0] - 30 * RATE) < 0.05 * RATE
    assert snr_db(base[: int(19.5 * RATE)], longer[: int(19.5 * RATE)]) >= 30

    upload = fake.add_cdn_file("hum.wav", wav_bytes(12), "audio/wav")
    like = p.option("like", upload["id"], kind=p.ATTACHMENT_OPTION)
    liked = await fake.send_slash("song", [p.option("description", "jazz"), like], user, attachments=[upload])
    await final_edit(fake, liked)
    assert liked.original is not None
    liked_job = await asyncio.to_thread(stack.service.queue.get, song_id_of(liked.original))
    assert liked_job is not None and liked_job.spec.like and liked_job.source_blob


async def test_bad_edits_get_one_private_sentence(stack: Stack) -> None:
    fake = stack.fake
    ann, bob = fake.member("ann"), fake.member("bob")
    record = await fake.send_slash("song", [p.option("description", "rain"), p.option("duration", 20)], ann)
    await final_edit(fake, record)
    assert record.original is not None
    song_id = song_id_of(record.original)

    async def repaint(part: str, who: dict = ann, song: int = song_id) -> str:
        sent = await fake.send_slash("repaint", [p.option("song_id", song), p.option("part", part)], who)
        return await refusal(fake, sent)

    assert "must lie within 0:00-0:20" in await repaint("0:15-0:25")
    assert "must come after its start" in await repaint("12-8")
    assert "whole of song" in await repaint("0-20")
    assert "no finished song #999" in await repaint("1-2", song=999)
    assert "is not yours" in await repaint("1-2", who=bob)
    clicked = await fake.click(f"songbot:extend:{song_id}", record.original, bob)
    assert "is not yours" in await refusal(fake, clicked)
    too_long = await fake.send_slash("extend", [p.option("song_id", song_id), p.option("seconds", 600)], ann)
    assert "can grow at most" in await refusal(fake, too_long)
    png = fake.add_cdn_file("cat.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png")
    like = p.option("like", png["id"], kind=p.ATTACHMENT_OPTION)
    not_audio = await fake.send_slash("song", [p.option("description", "jazz"), like], ann, attachments=[png])
    assert (await refusal(fake, not_audio)).startswith("That file is not audio")
    boxed = [p.option("description", "jazz"), like, p.option("write_lyrics", True)]
    both = await fake.send_slash("song", boxed, ann, attachments=[png])
    assert "lyrics option" in await refusal(fake, both)
    # Discord's client enforces takes' declared range (1-4); an interaction past it meets our own bound.
    nine = await fake.send_slash("song", [p.option("description", "rain"), p.option("takes", 9)], ann)
    assert await refusal(fake, nine) == "takes must be between 1 and 4."
    assert sum(stack.service.queue.counts().values()) == 1
