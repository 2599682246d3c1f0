"""House styles through discord.py against the fake Discord: /styles, the style option's autocomplete, a refusal."""

from __future__ import annotations

from pathlib import Path

from bot.discord.adapter import sync_commands
from tests.bot.discord.discord_stack import build_stack
from tests.fakes import discord_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_interactions import EPHEMERAL


def install_styles(model_dir: Path, *names: str) -> None:
    """Style folders as the bot sees them (the engine, not started here, would load their weights)."""
    for name in names:
        folder = model_dir / "loras" / name
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text('{"r": 4, "lora_alpha": 8}')


async def test_styles_autocomplete_and_an_unknown_style(tmp_path: Path, fake_discord: FakeDiscord) -> None:
    model_dir = tmp_path / "models"
    install_styles(model_dir, "demo", "dream-pop", "lofi")
    stack = build_stack(tmp_path, fake_discord, engine=False, engine_backend="acestep", model_dir=model_dir)
    await sync_commands(stack.settings, int(fake_discord.guild_id))
    await stack.start_bot()
    try:
        user = fake_discord.member("ann")
        listing = await fake_discord.send_slash("styles", [], user)
        message = await fake_discord.wait_for(lambda: listing.original or (listing.followups and listing.followups[0]))
        assert "• demo\n• dream-pop\n• lofi" in message["content"] and message["flags"] & EPHEMERAL

        typed = await fake_discord.send_autocomplete(
            "song", [p.option("description", "rain"), p.option("style", "D")], "style", user
        )
        await fake_discord.wait_for(lambda: typed.choices is not None)
        assert typed.choices == [{"name": "demo", "value": "demo"}, {"name": "dream-pop", "value": "dream-pop"}]
        cover = await fake_discord.send_autocomplete("cover", [p.option("house_style", "lo")], "house_style", user)
        await fake_discord.wait_for(lambda: cover.choices is not None)
        assert cover.choices == [{"name": "lofi", "value": "lofi"}]
        for edit, options in (("repaint", [p.option("part", "1-2")]), ("extend", [p.option("seconds", 10)])):
            typed = await fake_discord.send_autocomplete(
                edit, [p.option("song_id", 1), *options, p.option("style", "dr")], "style", user
            )
            await fake_discord.wait_for(lambda typed=typed: typed.choices is not None)
            assert typed.choices == [{"name": "dream-pop", "value": "dream-pop"}], edit

        refused = await fake_discord.send_slash(
            "song", [p.option("description", "rain"), p.option("style", "nope")], user
        )
        sentence = "There is no style called 'nope'; the styles here are demo, dream-pop, lofi (see /styles)."
        await fake_discord.wait_for(lambda: any(sentence in text for text in refused.texts()))
        assert stack.service.queue.claim("engine", 8, stack.service.clock(), 30) == []
    finally:
        await stack.stop_bot()
