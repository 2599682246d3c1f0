"""/describe on Discord end to end: the real discord.py client against the fake Discord, the bot process and
the sketch engine. The attachment option, the "Describe this" message menu, the refusals, and the 🎵
"Make one like this" button, which queues a song with exactly the fields shown for whoever presses it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.describe import Described, LikeThis
from bot.discord.adapter import configure_endpoints
from bot.discord.client import SongbotClient
from bot.discord.describe import PART_LIMIT, describe_message, parts
from bot.discord.messenger import DiscordMessenger
from storage.contract.spec import Description, Plan
from storage.contract.values import BPM_MAX, BPM_MIN, KEYS
from tests.bot.discord.discord_stack import Stack, custom_ids, final_edit, running_stack, stack_settings, wav_bytes
from tests.bot.discord.test_discord_messenger import NOW, delivery
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import BOT_TOKEN, FakeDiscord

EPHEMERAL = 64
FIELDS = re.compile(r"BPM: (\d+) · Key: (.+) · Time signature: 4/4")


@pytest.fixture
async def stack(tmp_path: Path, fake_discord: FakeDiscord) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, fake_discord) as built:
        yield built


async def description_of(fake: FakeDiscord, record) -> dict:
    """The original response once it shows the description."""
    return await fake.wait_for(lambda: record.original if "🔎" in (record.original or {}).get("content", "") else None)


async def test_describe_by_option_and_by_menu_then_make_one_like_it(stack: Stack) -> None:
    fake, user = stack.fake, fake_member(stack, "erin")
    upload = fake.add_cdn_file("take.wav", wav_bytes(8), "audio/wav")
    by_option = await fake.send_slash(
        "describe", [p.option("file", upload["id"], kind=p.ATTACHMENT_OPTION)], user, attachments=[upload]
    )
    target = fake.user_message(fake.member("carol"), "my demo", [fake.add_cdn_file("demo.wav", wav_bytes(6), None)])
    by_menu = await fake.send_message_command("Describe this", target, user)
    shown = [await description_of(fake, record) for record in (by_option, by_menu)]
    assert "Duration: 0:08" in shown[0]["content"] and "Duration: 0:06" in shown[1]["content"]
    message = shown[0]
    described_id = int(re.search(r"🔎 #(\d+)", message["content"])[1])
    assert custom_ids(message) == [f"songbot:likethis:{described_id}"] and by_option.ack_type == 5
    [(bpm, key)] = FIELDS.findall(message["content"])
    assert BPM_MIN <= int(bpm) <= BPM_MAX and key in KEYS and "sketch backend" in message["content"]

    pressed = await fake.click(f"songbot:likethis:{described_id}", message, fake.member("frank"))
    edit = await final_edit(fake, pressed)
    assert edit.files  # the song, posted in the presser's interaction
    made_id = int(re.search(r"#(\d+)", pressed.original["content"])[1])
    job = stack.service.queue.get(made_id)
    caption = re.search(r"Caption: (.+)", message["content"])[1]
    assert job.kind == "song" and (job.spec.bpm, job.spec.key, job.spec.time_signature) == (int(bpm), key, 4)
    assert job.spec.caption == caption.replace("\\", "") and job.spec.duration_s == 10 and job.spec.instrumental


async def test_what_is_not_a_recording_gets_one_private_sentence(stack: Stack) -> None:
    fake, user = stack.fake, fake_member(stack, "gus")
    png = fake.add_cdn_file("cat.mp3", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "audio/mpeg")
    blip = fake.add_cdn_file("blip.wav", wav_bytes(1), "audio/wav")
    refused = []
    for upload in (png, blip):
        record = await fake.send_slash(
            "describe", [p.option("file", upload["id"], kind=p.ATTACHMENT_OPTION)], user, attachments=[upload]
        )
        refused.append(
            await fake.wait_for(
                lambda r=record: next(
                    (f for f in r.followups if f["flags"] & EPHEMERAL), r.original if r.ephemeral else None
                )
            )
        )
    assert "not audio" in refused[0]["content"]
    assert "only 1 second long; recordings to describe need at least 3 seconds" in refused[1]["content"]
    no_audio = fake.user_message(fake.member("carol"), "just words")
    record = await fake.send_message_command("Describe this", no_audio, user)
    shown = await fake.wait_for(lambda: record.original)
    assert shown["flags"] & EPHEMERAL and shown["content"] == "That message has no audio file to describe."
    assert sum(stack.service.queue.counts().values()) == 0


def test_long_lyrics_run_over_parts_discord_accepts_with_the_button_under_the_last() -> None:
    lyrics = "\n".join(f"line {n} of a very long song that goes on" for n in range(400))
    like = LikeThis("a long song", lyrics, 90, "C major", 4, 60, "en")
    description = Description(plan=Plan(caption="a long song", lyrics=lyrics, duration_s=60.0), backend="acestep")
    texts, view = describe_message(Described(7, description, like))
    assert len(texts) > 1 and all(len(text) <= PART_LIMIT for text in texts)
    assert texts[-1].endswith("line 399 of a very long song that goes on")
    assert [item.custom_id for item in view.children] == ["songbot:likethis:7"]
    assert parts("x" * 5, 2) == ["xx", "xx", "x"]


def fake_member(stack: Stack, name: str) -> dict:
    return stack.fake.member(name)


@pytest.fixture
async def messenger(tmp_path: Path, fake_discord: FakeDiscord) -> AsyncIterator[DiscordMessenger]:
    configure_endpoints(stack_settings(tmp_path, fake_discord))
    client = SongbotClient(stack_settings(tmp_path, fake_discord), None)
    await client.login(BOT_TOKEN)
    yield DiscordMessenger(client, clock=lambda: NOW)
    await client.close()


async def test_after_the_token_expired_a_long_description_goes_to_the_channel_in_parts(
    fake_discord: FakeDiscord, messenger: DiscordMessenger
) -> None:
    lyrics = "\n".join(f"line {n} of a very long song, @everyone sing" for n in range(120))
    like = LikeThis("a long song", lyrics, 90, "C major", 4, 60, "en")
    description = Description(plan=Plan(caption="a long song", lyrics=lyrics, duration_s=60.0), backend="acestep")
    await messenger.send_description(delivery(fake_discord, -5, None), Described(7, description, like))
    posted = fake_discord.channel_messages
    assert len(posted) > 1 and posted[0]["content"].startswith("<@123456789012345678> 🔎 #7")
    assert all("@everyone" not in m["content"] for m in posted)
    assert [custom_ids(m) for m in posted] == [[]] * (len(posted) - 1) + [["songbot:likethis:7"]]
    assert posted[-1]["content"].endswith("line 119 of a very long song, @\u200beveryone sing")
