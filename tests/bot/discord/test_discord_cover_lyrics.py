"""/cover on Discord with new lyrics (the `lyrics` option, or the ✍️ box) and `language`: the real discord.py
client against the fake Discord, the bot process and the engine worker (sketch backend), all in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.contract.types import JobView
from tests.bot.discord.discord_stack import Stack, final_edit, running_stack, wav_bytes
from tests.bot.discord.test_discord_adapter import modal_input
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_interactions import InteractionRecord

WORDS = "[verse]\nla luna sobre el mar\nme canta una canción"


@pytest.fixture
async def stack(tmp_path: Path, fake_discord: FakeDiscord) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, fake_discord) as built:
        yield built


async def job_of(stack: Stack, record: InteractionRecord) -> JobView:
    """The queued job a cover's status message names."""
    status = await stack.fake.wait_for(lambda: next((t for t in record.texts() if "#" in t), None))
    job = await asyncio.to_thread(stack.service.queue.get, int(status.split("#")[1].split(" ")[0]))
    assert job is not None
    return job


async def test_cover_lyrics_by_option_and_by_box_with_a_language(stack: Stack) -> None:
    fake, user = stack.fake, stack.fake.member("rosa")
    upload = fake.add_cdn_file("take.wav", wav_bytes(12), "audio/wav")
    file = p.option("file", upload["id"], kind=p.ATTACHMENT_OPTION)
    options = [file, p.option("style", "bossa nova"), p.option("lyrics", "la luna"), p.option("language", "ES")]
    by_option = await fake.send_slash("cover", options, user, attachments=[upload])
    job = await job_of(stack, by_option)
    assert (job.spec.caption, job.spec.lyrics, job.spec.language) == ("bossa nova", "la luna", "es")
    assert "it sings no words" in (await final_edit(fake, by_option)).body["content"].lower()

    boxed = [file, p.option("write_lyrics", True), p.option("language", "es")]
    asked = await fake.send_slash("cover", boxed, user, attachments=[upload])
    modal = await fake.wait_for(lambda: asked.modal)
    submitted = await fake.submit_modal(modal["custom_id"], {modal_input(modal): WORDS}, user)
    job = await job_of(stack, submitted)
    assert (job.spec.lyrics, job.spec.language) == (WORDS, "es")


async def test_a_bad_language_or_words_for_an_instrumental_cover_get_one_private_sentence(stack: Stack) -> None:
    fake, user = stack.fake, stack.fake.member("tom")
    upload = fake.add_cdn_file("take.wav", wav_bytes(12), "audio/wav")
    file = p.option("file", upload["id"], kind=p.ATTACHMENT_OPTION)
    for extra, sentence in (
        ([p.option("language", "klingon")], "I don't know the language 'klingon'"),
        ([p.option("lyrics", "la"), p.option("instrumental", True)], "can't be instrumental"),
        ([p.option("write_lyrics", True), p.option("instrumental", True)], "can't be instrumental"),
    ):
        record = await fake.send_slash("cover", [file, *extra], user, attachments=[upload])
        message = await fake.wait_for(lambda r=record: r.original or (r.followups and r.followups[0]))
        assert sentence in message["content"] and record.modal is None
