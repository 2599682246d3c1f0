"""The fake Discord itself, driven by the real discord.py client (no songbot code involved).

These pin the wire behaviour the adapter tests rely on: login, READY, command sync, interaction
callbacks, ``@original`` edits and follow-ups with multipart files, CDN downloads, 429 retries.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import BOT_TOKEN, NONCE_WINDOW_S, FakeDiscord


class EchoButton(discord.ui.DynamicItem[discord.ui.Button], template=r"echo:(?P<n>[0-9]+)"):
    """A persistent button whose custom id carries a number."""

    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label="Echo", custom_id=f"echo:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str]) -> EchoButton:  # type: ignore[override]
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"echo {self.n}", ephemeral=True)


class EditButton(discord.ui.DynamicItem[discord.ui.Button], template=r"edit:(?P<mode>update|defer)"):
    """Edits the message it is on: with UPDATE_MESSAGE (7) or DEFERRED_UPDATE (6) then an edit."""

    def __init__(self, mode: str) -> None:
        super().__init__(discord.ui.Button(label="Edit", custom_id=f"edit:{mode}"))
        self.mode = mode

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str]) -> EditButton:  # type: ignore[override]
        return cls(match["mode"])

    async def callback(self, interaction: discord.Interaction) -> None:
        if self.mode == "update":
            await interaction.response.edit_message(content="updated", view=None)
        else:
            await interaction.response.defer()
            await interaction.edit_original_response(content="edited later")


class EchoModal(discord.ui.Modal, title="Say"):
    text = discord.ui.TextInput(label="Text", custom_id="text", style=discord.TextStyle.paragraph)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"you said {self.text.value}")


class EchoBot(discord.Client):
    """A tiny bot with one command of each kind the songbot adapter uses."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(app_commands.Command(name="ping", description="Ping", callback=self.ping))
        self.tree.add_command(app_commands.Command(name="size", description="Size", callback=self.size))
        self.tree.add_command(app_commands.Command(name="say", description="Say", callback=self.say))
        self.tree.add_command(app_commands.Command(name="file", description="File", callback=self.file))
        self.tree.add_command(app_commands.ContextMenu(name="Measure", callback=self.measure))
        self.slow_s = 0.0

    async def setup_hook(self) -> None:
        self.add_dynamic_items(EchoButton, EditButton)

    async def ping(self, interaction: discord.Interaction, text: str, n: int = 1) -> None:
        await asyncio.sleep(self.slow_s)
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"working on {text}")
        file = discord.File(fp=io.BytesIO(text.encode() * n), filename="out.txt")
        await interaction.edit_original_response(content="done", attachments=[file], view=self.view(n))

    async def size(self, interaction: discord.Interaction, file: discord.Attachment) -> None:
        data = await file.read()
        await interaction.response.send_message(f"{file.filename}: {len(data)} bytes", ephemeral=True)

    async def file(self, interaction: discord.Interaction) -> None:
        view = discord.ui.View(timeout=None)
        view.add_item(EditButton("update"))
        view.add_item(EditButton("defer"))
        await interaction.response.send_message("here", file=discord.File(io.BytesIO(b"xyz"), "x.bin"), view=view)

    async def say(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(EchoModal())

    async def measure(self, interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.defer(ephemeral=True)
        data = await message.attachments[0].read()
        await interaction.followup.send(f"{len(data)} bytes", ephemeral=True)

    @staticmethod
    def view(n: int) -> discord.ui.View:
        view = discord.ui.View(timeout=None)
        view.add_item(EchoButton(n))
        return view


@pytest.fixture
async def bot(fake_discord: FakeDiscord) -> AsyncIterator[EchoBot]:
    client = EchoBot()
    await client.login(BOT_TOKEN)
    task = asyncio.create_task(client.connect(reconnect=False))
    await asyncio.wait_for(client.wait_until_ready(), 10)
    guild = discord.Object(int(fake_discord.guild_id))
    client.tree.copy_global_to(guild=guild)
    await client.tree.sync(guild=guild)
    yield client
    await client.close()
    await task


async def test_login_reaches_ready_with_default_intents(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    assert bot.user is not None and str(bot.user.id) == fake_discord.app_id
    assert bot.application_id == int(fake_discord.app_id)
    assert [str(g.id) for g in bot.guilds] == [fake_discord.guild_id]
    identify = next(f for f in fake_discord.gateway.sessions[0].received if f["op"] == 2)
    assert identify["d"]["intents"] == discord.Intents.default().value


async def test_sync_registers_commands_per_guild(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    names = {(c["name"], c["type"]) for c in fake_discord.commands[fake_discord.guild_id]}
    assert names == {("ping", 1), ("size", 1), ("say", 1), ("file", 1), ("Measure", 3)}
    ping = next(c for c in fake_discord.commands[fake_discord.guild_id] if c["name"] == "ping")
    assert [(o["name"], o["type"], o.get("required", False)) for o in ping["options"]] == [
        ("text", 3, True),
        ("n", 4, False),
    ]


async def test_slash_defer_edit_and_multipart_file(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    user = fake_discord.member("alice")
    record = await fake_discord.send_slash("ping", [p.option("text", "hey"), p.option("n", 3)], user)
    await fake_discord.wait_for(lambda: len(record.edits) == 2)
    assert record.ack_type == 5 and not record.ack_late
    assert record.texts() == ["working on hey", "done"]
    final = record.edits[-1]
    assert final.is_multipart and final.files[0].filename == "out.txt" and final.files[0].data == b"heyheyhey"
    assert record.original is not None and record.original["components"][0]["components"][0]["custom_id"] == "echo:3"


async def test_429_on_upload_is_retried(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    rule = fake_discord.rate_limit("PATCH", r"/messages/@original$", multipart_only=True, retry_after_s=0.1)
    record = await fake_discord.send_slash("ping", [p.option("text", "x")], fake_discord.member("bob"))
    await fake_discord.wait_for(lambda: len(record.edits) == 2)
    assert rule.hits == 1
    assert [c.status for c in fake_discord.calls_to("PATCH", "@original")] == [200, 429, 200]
    assert record.edits[-1].files[0].data == b"x"


async def test_attachment_option_downloads_from_cdn(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    file = fake_discord.add_cdn_file("a.ogg", b"\x00" * 1234, "audio/ogg")
    option = p.option("file", file["id"], kind=p.ATTACHMENT_OPTION)
    record = await fake_discord.send_slash("size", [option], fake_discord.member("carol"), attachments=[file])
    await fake_discord.wait_for(lambda: record.original)
    assert record.ack_type == 4 and record.ephemeral
    assert record.original["content"] == "a.ogg: 1234 bytes"


async def test_message_context_menu_reads_target_attachment(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    author = fake_discord.member("dave")
    target = fake_discord.user_message(
        author, attachments=[fake_discord.add_cdn_file("b.mp3", b"1" * 99, "audio/mpeg")]
    )
    record = await fake_discord.send_message_command("Measure", target, fake_discord.member("erin"))
    await fake_discord.wait_for(lambda: record.followups)
    assert record.followups[0]["content"] == "99 bytes" and record.followups[0]["flags"] & 64


async def test_button_after_restart_and_modal(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    user = fake_discord.member("frank")
    record = await fake_discord.send_slash("ping", [p.option("text", "x"), p.option("n", 7)], user)
    message = await fake_discord.wait_for(lambda: len(record.edits) == 2 and record.original)
    await bot.close()
    fresh = EchoBot()
    await fresh.login(BOT_TOKEN)
    task = asyncio.create_task(fresh.connect(reconnect=False))
    await asyncio.wait_for(fresh.wait_until_ready(), 10)
    try:
        click = await fake_discord.click("echo:7", message, user)
        await fake_discord.wait_for(lambda: click.original)
        assert click.original["content"] == "echo 7"
        ask = await fake_discord.send_slash("say", [], user)
        await fake_discord.wait_for(lambda: ask.modal)
        assert ask.modal["custom_id"]
        submit = await fake_discord.submit_modal(ask.modal["custom_id"], {"text": "two\nlines"}, user)
        await fake_discord.wait_for(lambda: submit.original)
        assert submit.original["content"] == "you said two\nlines"
    finally:
        await fresh.close()
        await task


async def test_late_ack_and_expired_token_are_refused(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    fake_discord.ack_deadline_s, bot.slow_s = 0.05, 0.3
    late = await fake_discord.send_slash("ping", [p.option("text", "late")], fake_discord.member("gina"))
    await fake_discord.wait_for(lambda: late.ack_late)
    assert late.ack is None
    fake_discord.ack_deadline_s, bot.slow_s = 3.0, 0.0
    record = await fake_discord.send_slash("ping", [p.option("text", "x")], fake_discord.member("hal"))
    await fake_discord.wait_for(lambda: record.edits)
    fake_discord.expire(record)
    webhook = discord.Webhook.partial(int(fake_discord.app_id), record.token, client=bot)
    with pytest.raises(discord.HTTPException) as error:
        await webhook.edit_message("@original", content="too late")  # type: ignore[arg-type]
    assert error.value.status == 401 and error.value.code == 50027


async def test_global_429_on_a_rest_route_is_retried(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    rule = fake_discord.rate_limit("POST", r"/channels/\d+/messages$", is_global=True, retry_after_s=0.1)
    channel = bot.get_channel(int(fake_discord.channel["id"]))
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("hello", file=discord.File(io.BytesIO(b"abc"), "a.txt"))
    assert rule.hits == 1 and sent.attachments[0].filename == "a.txt"
    assert [c.status for c in fake_discord.calls_to("POST", "/messages$")] == [429, 200]
    assert fake_discord.channel_messages[-1]["content"] == "hello"


async def test_file_in_the_initial_response_and_component_updates(fake_discord: FakeDiscord, bot: EchoBot) -> None:
    user = fake_discord.member("ivan")
    record = await fake_discord.send_slash("file", [], user)
    message = await fake_discord.wait_for(lambda: record.original)
    assert record.ack_type == 4 and record.ack is not None and record.ack.files[0].data == b"xyz"
    attachment = message["attachments"][0]
    async with aiohttp.ClientSession() as session, session.get(attachment["url"]) as response:
        assert await response.read() == b"xyz"  # uploads are served back from the CDN route
    update = await fake_discord.click("edit:update", message, user)
    updated = await fake_discord.wait_for(lambda: update.original)
    assert update.ack_type == 7 and updated["content"] == "updated" and updated["id"] == message["id"]
    later = await fake_discord.click("edit:defer", message, user)
    await fake_discord.wait_for(lambda: later.edits)
    assert later.ack_type == 6 and later.original is not None and later.original["content"] == "edited later"


async def test_a_repeated_nonce_gets_the_first_message_as_discord_does(
    fake_discord: FakeDiscord, bot: EchoBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = bot.get_partial_messageable(int(fake_discord.channel["id"]))
    first = await channel.send("song #7", nonce="songbot-7-r", file=discord.File(io.BytesIO(b"mp3"), "a.mp3"))
    again = await channel.send("song #7", nonce="songbot-7-r", file=discord.File(io.BytesIO(b"mp3"), "a.mp3"))
    other = await channel.send("song #8", nonce="songbot-8-r")
    assert again.id == first.id and other.id != first.id
    assert [m["content"] for m in fake_discord.channel_messages] == ["song #7", "song #8"]
    # A deleted message's nonce answers 404; past Discord's few minutes a nonce is forgotten.
    await other.delete()
    with pytest.raises(discord.NotFound):
        await channel.send("song #8", nonce="songbot-8-r")
    later = fake_discord.now() + NONCE_WINDOW_S + 1
    monkeypatch.setattr(fake_discord, "now", lambda: later)
    assert (await channel.send("song #7", nonce="songbot-7-r")).id != first.id
