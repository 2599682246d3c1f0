"""songbot's Discord adapter end to end: the real discord.py client against the fake Discord, the real
bot process (`run_bot`) and the real engine worker (sketch backend), all in-process."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from bot.discord.adapter import sync_commands
from tests.bot.discord.discord_stack import (
    ADMIN_ID,
    Stack,
    build_stack,
    custom_ids,
    decode,
    final_edit,
    running_stack,
    wav_bytes,
)
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import BOT_TOKEN, FakeDiscord
from tests.helpers import REPO

EPHEMERAL = 64
SONG_S = 10


@pytest.fixture
async def stack(tmp_path: Path, fake_discord: FakeDiscord) -> AsyncIterator[Stack]:
    """Commands synced to the guild, the engine running, the bot process connected."""
    async with running_stack(tmp_path, fake_discord) as built:
        yield built


async def song(stack: Stack, user: dict, *options: dict) -> tuple[dict, bytes]:
    """Run /song and return the final message and the MP3 it carried."""
    fake = stack.fake
    record = await fake.send_slash("song", [p.option("duration", SONG_S), *options], user)
    edit = await final_edit(fake, record)
    assert record.ack_type == 5 and not record.ack_late  # deferred, inside the 3 s the fake enforces
    assert record.original is not None
    return record.original, edit.files[0].data


async def test_sync_registers_commands(tmp_path: Path, fake_discord: FakeDiscord) -> None:
    settings = build_stack(tmp_path, fake_discord, engine=False).settings
    count = await sync_commands(settings, int(fake_discord.guild_id))
    guild_commands = {c["name"]: c for c in fake_discord.commands[fake_discord.guild_id]}
    assert count == len(guild_commands)
    assert set(guild_commands) == {
        "song",
        "cover",
        "describe",
        "reroll",
        "repaint",
        "extend",
        "history",
        "queue",
        "cancel",
        "styles",
        "lyrics",
        "help",
        "admin",
        "Cover this",
        "Describe this",
    }
    song_options = {o["name"]: o for o in guild_commands["song"]["options"]}
    assert song_options["description"]["required"] and song_options["duration"]["type"] == 4
    assert song_options["style"]["autocomplete"] and song_options["style_scale"]["type"] == 10
    cover_options = {o["name"]: o for o in guild_commands["cover"]["options"]}
    assert cover_options["house_style"]["autocomplete"] and not cover_options["style"].get("autocomplete")
    assert guild_commands["cover"]["options"][0]["type"] == p.ATTACHMENT_OPTION
    assert guild_commands["Cover this"]["type"] == 3
    assert guild_commands["admin"]["default_member_permissions"] == str(p.MANAGE_GUILD)
    assert await sync_commands(settings, None) == count and len(fake_discord.commands[None]) == count


async def test_song_defers_edits_progress_and_attaches_the_mp3(stack: Stack) -> None:
    fake = stack.fake
    user = fake.member("alice")
    text = p.option("description", "sea shanty for @everyone and <@123456789012345678>")
    message, mp3 = await song(stack, user, text, p.option("bpm", 100), p.option("seed", 4242))
    record = next(r for r in fake.interactions.values() if r.original is message)
    statuses = record.texts()
    assert any("generating" in s and "%" in s for s in statuses[:-1]), statuses
    assert statuses[-2].startswith("📤 Uploading") and statuses[-1] == message["content"]
    samples, rate = decode(mp3)
    assert abs(len(samples) / rate - SONG_S) < 0.5 and np.abs(samples).max() > 0.01
    song_id = message["content"].split("#")[-1].split(" ")[0]
    assert f"#{song_id}" in message["content"] and "seed 4242" in message["content"]
    assert "100 bpm" in message["content"]
    assert custom_ids(message) == [
        f"songbot:reroll:{song_id}",
        f"songbot:lyrics:{song_id}",
        f"songbot:repaint:{song_id}",
        f"songbot:extend:{song_id}",
    ]
    lyrics = await fake.click(f"songbot:lyrics:{song_id}", message, fake.member("someone else"))
    # Deferred privately, then edited with the answer (this song has no words: one sentence).
    shown = await fake.wait_for(lambda: next((c for c in lyrics.edits if (c.body or {}).get("content")), None))
    assert lyrics.ephemeral and shown.body["content"] == f"Song #{song_id} is instrumental: it has no lyrics to time."
    for call in record.edits:  # no edit may ping anyone, and user text stays inert
        assert call.body["allowed_mentions"] == {"parse": []}
        assert "@everyone" not in call.body.get("content", "") and "<@123456789012345678>" not in call.body.get(
            "content", ""
        )


async def test_cover_by_attachment_and_by_context_menu(stack: Stack) -> None:
    fake = stack.fake
    user = fake.member("bob")
    upload = fake.add_cdn_file("take.wav", wav_bytes(12), "audio/wav")
    option = p.option("file", upload["id"], kind=p.ATTACHMENT_OPTION)
    by_option = await fake.send_slash("cover", [option, p.option("style", "jazz trio")], user, attachments=[upload])
    target = fake.user_message(fake.member("carol"), "my demo", [fake.add_cdn_file("demo.wav", wav_bytes(11), None)])
    by_menu = await fake.send_message_command("Cover this", target, user)
    for record in (by_option, by_menu):
        edit = await final_edit(fake, record)
        samples, rate = decode(edit.files[0].data)
        assert len(samples) / rate > 10 and record.ack_type == 5
        assert custom_ids(record.original or {})[0].startswith("songbot:reroll:")


async def test_png_oversized_and_corrupt_uploads_get_one_private_sentence(stack: Stack) -> None:
    fake = stack.fake
    user = fake.member("dave")
    png = fake.add_cdn_file("cat.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png")
    huge = fake.add_cdn_file("long.wav", wav_bytes(1), "audio/wav", size=500 * 1024 * 1024)
    refused = []
    for upload in (png, huge):
        option = p.option("file", upload["id"], kind=p.ATTACHMENT_OPTION)
        record = await fake.send_slash("cover", [option], user, attachments=[upload])
        refused.append(await fake.wait_for(lambda r=record: r.original))
    assert all(m["flags"] & EPHEMERAL for m in refused)
    assert refused[0]["content"].startswith("That file is not audio")
    assert "MB" in refused[1]["content"] and "\n" not in refused[1]["content"]
    assert fake.calls_to("GET", "/cdn/") == []  # refused before downloading
    corrupt = fake.add_cdn_file("broken.mp3", b"ID3" + bytes(range(256)) * 40, "audio/mpeg")
    record = await fake.send_slash(
        "cover", [p.option("file", corrupt["id"], kind=p.ATTACHMENT_OPTION)], user, attachments=[corrupt]
    )
    followup = await fake.wait_for(lambda: record.followups and record.followups[0])
    assert followup["flags"] & EPHEMERAL and record.original is None  # public "thinking…" removed


async def test_reroll_button_after_restart_and_reroll_with_the_same_seed(stack: Stack) -> None:
    fake = stack.fake
    user = fake.member("erin")
    first, first_mp3 = await song(stack, user, p.option("description", "lo-fi rain"), p.option("seed", 7))
    song_id = int(first["content"].split("#")[-1].split(" ")[0])
    await stack.stop_bot()
    await stack.start_bot()  # a new client, a new process as far as discord.py knows
    clicked = await fake.click(f"songbot:reroll:{song_id}", first, fake.member("frank"))
    new_mp3 = (await final_edit(fake, clicked)).files[0].data
    assert f"#{song_id}" not in clicked.original["content"] and new_mp3 != first_mp3
    again = await fake.send_slash("reroll", [p.option("song_id", song_id), p.option("seed", 7)], user)
    same_mp3 = (await final_edit(fake, again)).files[0].data
    first_samples, _ = decode(first_mp3)
    same_samples, _ = decode(same_mp3)
    assert np.array_equal(first_samples, same_samples)
    listed = await fake.send_slash("history", [], user)
    history = await fake.wait_for(lambda: listed.original)
    assert history["flags"] & EPHEMERAL and f"songbot:reroll:{song_id}" in custom_ids(history)


async def test_upload_rate_limited_once_is_retried(stack: Stack) -> None:
    fake = stack.fake
    rule = fake.rate_limit("PATCH", r"/messages/@original$", multipart_only=True, retry_after_s=0.3)
    _, mp3 = await song(stack, fake.member("gina"), p.option("description", "drum and bass"))
    assert rule.hits == 1 and len(decode(mp3)[0]) > 0
    statuses = [c.status for c in fake.calls_to("PATCH", "@original") if c.is_multipart or c.status == 429]
    assert statuses[-2:] == [429, 200]


async def test_result_is_refit_to_the_interaction_upload_limit(stack: Stack) -> None:
    stack.fake.attachment_size_limit = 100_000  # below the 10 s MP3 at the top bitrate
    _, mp3 = await song(stack, stack.fake.member("hal"), p.option("description", "tiny"))
    assert len(mp3) <= 100_000 and abs(len(decode(mp3)[0]) / decode(mp3)[1] - SONG_S) < 0.5


async def test_expired_token_delivers_in_the_channel_mentioning_only_the_requester(stack: Stack) -> None:
    fake = stack.fake
    user = fake.member("ivy")
    record = await fake.send_slash("song", [p.option("description", "late"), p.option("duration", SONG_S)], user)
    await fake.wait_for(lambda: record.ack)
    fake.expire(record)
    posted = await fake.wait_for(lambda: next((m for m in fake.channel_messages if m["attachments"]), None), 60)
    requester = user["user"]["id"]
    assert posted["content"].startswith(f"<@{requester}> ")
    mentions = posted["allowed_mentions"]
    assert mentions["parse"] == [] and [str(u) for u in mentions["users"]] == [requester]
    # a status message posted to the channel meanwhile is removed: the result replaces it
    await fake.wait_for(lambda: [m for m in fake.channel_messages if m["author"]["id"] == fake.app_id] == [posted])


async def test_modal_lyrics_private_commands_and_admin(stack: Stack) -> None:
    fake = stack.fake
    user = fake.member("jo")
    asked = await fake.send_slash("song", [p.option("description", "ballad"), p.option("write_lyrics", True)], user)
    modal = await fake.wait_for(lambda: asked.modal)
    submitted = await fake.submit_modal(modal["custom_id"], {modal_input(modal): "[verse]\nline one\nline two"}, user)
    status = await fake.wait_for(lambda: next((t for t in submitted.texts() if "#" in t), None))
    job = await asyncio.to_thread(stack.service.queue.get, int(status.split("#")[1].split(" ")[0]))
    assert job is not None and job.spec.lyrics == "[verse]\nline one\nline two"
    for name in ("help", "queue", "history"):
        record = await fake.send_slash(name, [], user)
        message = await fake.wait_for(lambda r=record: r.original or (r.followups and r.followups[0]))
        assert message["flags"] & EPHEMERAL and message["content"]
        if name == "help":  # which backend makes the songs is said before the first result
            assert "sketch synthesizer (no model weights)" in message["content"]
    denied = await fake.send_slash("admin", [p.subcommand("pause")], user)
    assert "operators" in (await fake.wait_for(lambda: denied.original))["content"]
    boss = p.member(p.user(ADMIN_ID, "boss"), permissions=p.MANAGE_GUILD)
    allowed = await fake.send_slash("admin", [p.subcommand("stats")], boss)
    assert (await fake.wait_for(lambda: allowed.original))["content"].startswith("Users:")
    quota = [p.option("who", f"<@{user['user']['id']}>"), p.option("songs_per_day", 3)]
    changed = await fake.send_slash("admin", [p.subcommand("quota", quota)], boss)
    assert (await fake.wait_for(lambda: changed.original))["content"] == (
        f"Daily quota of discord:{user['user']['id']} is now 3."
    )
    reset = await fake.send_slash("admin", [p.subcommand("quota", quota[:1])], boss)
    assert (await fake.wait_for(lambda: reset.original))["content"].endswith("is now the default.")
    nobody = await fake.send_slash("admin", [p.subcommand("ban", [p.option("who", "jo")])], boss)
    assert (await fake.wait_for(lambda: nobody.original))["content"].startswith("Name the user with a @mention")


def modal_input(modal: dict) -> str:
    """The custom id of the modal's only text input."""
    return modal["components"][0]["components"][0]["custom_id"]


async def test_guild_allowlist_and_clean_stop(tmp_path: Path, fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    stack = build_stack(tmp_path, fake, engine=False, allowed_guild_ids=frozenset({"42"}))
    await sync_commands(stack.settings, int(fake.guild_id))
    await stack.start_bot()
    user = fake.member("outsider")
    command = await fake.send_slash("help", [], user)
    button = p.message(
        fake.ids.next(),
        fake.channel["id"],
        fake.bot,
        components=[
            {"type": 1, "components": [{"type": 2, "style": 1, "label": "Re-roll", "custom_id": "songbot:reroll:1"}]}
        ],
    )
    click = await fake.click("songbot:reroll:1", button, user)
    for record in (command, click):
        refused = await fake.wait_for(lambda r=record: r.original)
        assert refused["flags"] & EPHEMERAL and refused["content"] == "This bot is not enabled here."
    await stack.stop_bot()  # the path SIGTERM takes: the runner's stop event, then adapter.stop()
    await fake.wait_for(lambda: fake.gateway.sessions == [])


async def test_songbot_discord_sync_cli(tmp_path: Path, fake_discord: FakeDiscord) -> None:
    env = os.environ | {
        "DISCORD_TOKEN": BOT_TOKEN,
        "DISCORD_API_BASE_URL": fake_discord.api_base,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
        "SONGBOT_DATA_DIR": str(tmp_path),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "songbot",
        "discord",
        "sync",
        "--guild",
        fake_discord.guild_id,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    names = {c["name"] for c in fake_discord.commands[fake_discord.guild_id]}
    assert out.decode().strip() == f"Synced {len(names)} commands to guild {fake_discord.guild_id}."
    assert {"song", "cover", "Cover this", "admin"} <= names and BOT_TOKEN not in err.decode()


async def test_cancel_replaces_the_public_status_with_a_private_sentence(
    tmp_path: Path, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    stack = build_stack(tmp_path, fake, engine=False)  # no engine: the song stays queued
    await sync_commands(stack.settings, int(fake.guild_id))
    await stack.start_bot()
    try:
        user = fake.member("kim")
        record = await fake.send_slash("song", [p.option("description", "never made")], user)
        queued = await fake.wait_for(lambda: next((t for t in record.texts() if "queued" in t), None))
        song_id = int(queued.split("#")[1].split(" ")[0])
        cancel = await fake.send_slash("cancel", [p.option("song_id", song_id)], user)
        said = await fake.wait_for(lambda: cancel.original)
        assert said["flags"] & EPHEMERAL and f"#{song_id}" in said["content"]
        notice = await fake.wait_for(lambda: record.followups and record.followups[0])
        assert notice["flags"] & EPHEMERAL and "cancelled" in notice["content"] and record.original is None
    finally:
        await stack.stop_bot()


async def test_a_dropped_gateway_is_resumed_and_commands_keep_working(stack: Stack) -> None:
    fake = stack.fake
    [session] = fake.gateway.sessions
    await session.socket.close(code=4000, message=b"Unknown error.")  # Discord's "reconnect and resume"
    await fake.wait_for(
        lambda: any(frame.get("op") == 6 for s in fake.gateway.sessions if s is not session for frame in s.received),
        20,
    )
    resumed = next(s for s in fake.gateway.sessions if s is not session)
    assert resumed.identified and not resumed.socket.closed
    _, mp3 = await song(stack, fake.member("after-resume"), p.option("description", "morning after the storm"))
    samples, rate = decode(mp3)
    assert abs(len(samples) / rate - SONG_S) < 0.1


async def test_key_and_language_take_the_text_syntax_normal_forms(stack: Stack) -> None:
    fake = stack.fake
    user = fake.member("kim")
    asked = await fake.send_slash(
        "song", [p.option("description", "tango"), p.option("key", "c#m"), p.option("language", "EN")], user
    )
    status = await fake.wait_for(lambda: next((t for t in asked.texts() if "#" in t), None))
    job = await asyncio.to_thread(stack.service.queue.get, int(status.split("#")[1].split(" ")[0]))
    assert job is not None and job.spec.key == "C# minor" and job.spec.language == "en"
    refused = await fake.send_slash("song", [p.option("description", "tango"), p.option("key", "H")], user)
    message = await fake.wait_for(lambda: refused.original)
    assert message["flags"] & EPHEMERAL and message["content"].startswith("I don't know the key")
