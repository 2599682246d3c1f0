"""The slash commands and the "Cover this" and "Describe this" context menus.

Each handler parses Discord's native options into the core's value types, checks what can be checked
without waiting, acknowledges, and submits; the delivery loop does the rest. The handlers are plain
functions listed in `SLASH_COMMANDS`; the command objects are built per client (`register_commands`),
so no command object (or its state) is shared between clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

import discord
from discord import app_commands

from bot.core import render
from bot.core.parser import (
    TAKES_MAX,
    CoverRequest,
    ExtendRequest,
    ParsedCommand,
    SongRequest,
    check_cover_words,
    normalize_key,
    normalize_language,
    parse_repaint,
)
from bot.core.service import DESCRIBED, Clip
from bot.discord.components import CoverLyricsModal, LyricsModal, history_view
from bot.discord.lyrics import show_lyrics
from bot.discord.replies import refuse, reply_private, service_of, submit_deferred, user_ref
from storage.contract.errors import UserError
from storage.contract.types import DeliveryTarget, JobView
from storage.contract.values import BEST_OF_MAX, BPM_MAX, BPM_MIN, ID_MAX, MAX_DURATION_S, MIN_DURATION_S, SEED_MAX

AUDIO_SUFFIXES = (".mp3", ".wav", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".aac", ".webm", ".aiff")
NO_AUDIO = "That message has no audio file to cover."
NO_AUDIO_TO_DESCRIBE = "That message has no audio file to describe."

Seed = app_commands.Range[int, 0, SEED_MAX]
SongId = app_commands.Range[int, 1, ID_MAX]
Duration = app_commands.Range[int, MIN_DURATION_S, MAX_DURATION_S]
Bpm = app_commands.Range[int, BPM_MIN, BPM_MAX]
Strength = app_commands.Range[float, 0.0, 1.0]
Text = app_commands.Range[str, 1, 1000]
Key = app_commands.Range[str, 1, 40]
Takes = app_commands.Range[int, 1, TAKES_MAX]
Best = app_commands.Range[int, 2, BEST_OF_MAX]
BEST_HELP = "Make 2 to 4 takes, score each against your request, post only the best (each counts as a song)"
Seconds = app_commands.Range[int, 1, MAX_DURATION_S]
StyleName = app_commands.Range[str, 1, 64]
STYLE_CHOICES_MAX = 25  # Discord shows at most 25 autocomplete choices


async def style_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for a style option: the installed styles containing what was typed so far."""
    typed = current.strip().casefold()
    names = service_of(interaction).style_names()
    matches = [name for name in names if typed in name.casefold()]
    return [app_commands.Choice(name=name, value=name) for name in matches[:STYLE_CHOICES_MAX]]


def register_commands(tree: app_commands.CommandTree[discord.Client]) -> None:
    """Add every user command to `tree` (the admin group lives in `admin.py`), each built afresh for it.

    Handlers reach the service and its settings through the client (`service_of`), so the same tree
    can be built without one, to sync the commands.
    """
    for name, description, callback in SLASH_COMMANDS:
        tree.add_command(app_commands.Command(name=name, description=description, callback=callback))
    tree.add_command(app_commands.ContextMenu(name="Cover this", callback=cover_this))
    tree.add_command(app_commands.ContextMenu(name="Describe this", callback=describe_this))


@app_commands.describe(
    description="What the song is about and how it sounds",
    lyrics="Lyrics (one line; use write_lyrics for more)",
    instrumental="No vocals",
    duration="Length in seconds",
    bpm="Tempo",
    key='Musical key, e.g. "F# minor"',
    language="Language code of the vocals, e.g. en",
    seed="Seed, to make the same song again",
    write_lyrics="Open a box to write multi-line lyrics",
    takes="How many takes to make at once, each with its own seed (1 to 4)",
    like="A recording whose sound the song should have",
    style="A house style (see /styles)",
    style_scale="How strongly the style is applied, 0 to 1 (default 1)",
    best=BEST_HELP,
)
@app_commands.autocomplete(style=style_choices)
async def song(
    interaction: discord.Interaction,
    description: Text,
    lyrics: str = "",
    instrumental: bool = False,
    duration: Duration | None = None,
    bpm: Bpm | None = None,
    key: Key | None = None,
    language: str | None = None,
    seed: Seed | None = None,
    write_lyrics: bool = False,
    takes: Takes = 1,
    like: discord.Attachment | None = None,
    style: StyleName | None = None,
    style_scale: Strength | None = None,
    best: Best | None = None,
) -> None:
    """/song: a new song; `write_lyrics` opens the ✍️ modal first; `like` is a clip whose sound it takes."""
    try:  # the same normal forms as the text syntax: `c#m` → `C# minor`, `EN` → `en`
        key = normalize_key(key) if key else None
        language = normalize_language(language) if language else None
    except UserError as error:
        await refuse(interaction, error.user_message)
        return
    request = SongRequest(
        description=description,
        lyrics=lyrics,
        instrumental=instrumental,
        duration_s=duration,
        bpm=bpm,
        key=key,
        language=language,
        seed=seed,
        takes=takes,
        lora=style,
        lora_scale=style_scale,
        best=best or 1,
    )
    await start_song(interaction, request, like, write_lyrics)


async def start_song(
    interaction: discord.Interaction, request: SongRequest, like: discord.Attachment | None, write_lyrics: bool
) -> None:
    """Submit a parsed /song: with its `like` clip, after the lyrics box, or at once."""
    service = service_of(interaction)
    if like is not None and write_lyrics:  # the lyrics box would come back without the clip
        await refuse(interaction, "With a like clip, give the lyrics in the lyrics option instead of the box.")
    elif like is not None:
        user = user_ref(interaction)
        await submit_upload(interaction, like, "clips", lambda clip, to: service.submit_songs(user, request, to, clip))
    elif write_lyrics:
        await interaction.response.send_modal(LyricsModal(request, service.settings.max_lyrics_chars))
    else:
        await submit_deferred(interaction, lambda target: service.submit_songs(user_ref(interaction), request, target))


@app_commands.describe(
    file="The audio to cover",
    style="How the cover should sound",
    strength="How closely it follows the original, 0 to 1 (default 1)",
    seed="Seed",
    takes="How many takes to make at once, each with its own seed (1 to 4)",
    lyrics="New lyrics for the cover (one line; use write_lyrics for more)",
    language="Language code the new lyrics are sung in, e.g. es",
    instrumental="No vocals",
    write_lyrics="Open a box to write multi-line new lyrics",
    house_style="A house style (see /styles); `style` above is the cover's description",
    style_scale="How strongly the house style is applied, 0 to 1 (default 1)",
    best=BEST_HELP,
)
@app_commands.autocomplete(house_style=style_choices)
async def cover(
    interaction: discord.Interaction,
    file: discord.Attachment,
    style: str = "",
    strength: Strength | None = None,
    seed: Seed | None = None,
    takes: Takes = 1,
    lyrics: str = "",
    language: str | None = None,
    instrumental: bool = False,
    write_lyrics: bool = False,
    house_style: StyleName | None = None,
    style_scale: Strength | None = None,
    best: Best | None = None,
) -> None:
    """/cover with an attachment; new lyrics in `lyrics`, or in the ✍️ box that `write_lyrics` opens first."""
    try:  # the text syntax's checks: `ES` → `es`; no new words (the box's either) for an instrumental cover
        language = normalize_language(language) if language else None
        check_cover_words("the box's words" if write_lyrics else lyrics, instrumental)
    except UserError as error:
        await refuse(interaction, error.user_message)
        return
    request = CoverRequest(
        style=style,
        strength=strength,
        seed=seed,
        takes=takes,
        lyrics=lyrics,
        language=language,
        instrumental=instrumental,
        lora=house_style,
        lora_scale=style_scale,
        best=best or 1,
    )
    if not write_lyrics:
        await cover_attachment(interaction, file, request)
        return

    async def submit(box: discord.Interaction, written: CoverRequest) -> None:
        await cover_attachment(box, file, written)  # the box's own interaction answers

    max_chars = service_of(interaction).settings.max_lyrics_chars
    await interaction.response.send_modal(CoverLyricsModal(request, max_chars, submit))


async def cover_this(interaction: discord.Interaction, message: discord.Message) -> None:
    """Message menu: cover the first audio attachment of a message."""
    audio = next((a for a in message.attachments if is_audio(a)), None)
    if audio is None:
        await refuse(interaction, NO_AUDIO)
        return
    await cover_attachment(interaction, audio, CoverRequest())


@app_commands.describe(file="The recording to describe")
async def describe(interaction: discord.Interaction, file: discord.Attachment) -> None:
    """/describe with an attachment: caption, bpm, key, time signature, language and lyrics of a recording."""
    await describe_attachment(interaction, file)


async def describe_this(interaction: discord.Interaction, message: discord.Message) -> None:
    """Message menu: describe the first audio attachment of a message."""
    audio = next((a for a in message.attachments if is_audio(a)), None)
    if audio is None:
        await refuse(interaction, NO_AUDIO_TO_DESCRIBE)
        return
    await describe_attachment(interaction, audio)


async def describe_attachment(interaction: discord.Interaction, file: discord.Attachment) -> None:
    """Check (as a cover's upload), download and submit the description of an attachment."""
    service, user = service_of(interaction), user_ref(interaction)
    await submit_upload(interaction, file, DESCRIBED, lambda clip, to: service.submit_describe(user, clip, to))


@app_commands.describe(song_id="The song id (the number after #)", seed="Seed; leave out for a new one")
async def reroll(interaction: discord.Interaction, song_id: SongId, seed: Seed | None = None) -> None:
    """/reroll <song id> [seed]."""
    service = service_of(interaction)
    await submit_deferred(interaction, lambda target: service.reroll(user_ref(interaction), song_id, seed, target))


@app_commands.describe(
    song_id="The song id (the number after #)",
    part="The part: start-end in seconds or m:ss, e.g. 0:30-0:45",
    caption="What the part should sound like (optional)",
    style="A house style (see /styles); leave out to keep the song's own",
    style_scale="How strongly the style is applied, 0 to 1 (default 1)",
)
@app_commands.autocomplete(style=style_choices)
async def repaint(
    interaction: discord.Interaction,
    song_id: SongId,
    part: str,
    caption: str = "",
    style: StyleName | None = None,
    style_scale: Strength | None = None,
) -> None:
    """/repaint <song id> <start>-<end> [caption], with the text commands' rules for the part."""
    try:
        request = parse_repaint(ParsedCommand("repaint", f"{song_id} {part} {caption}".strip(), ""))
    except UserError as error:
        await refuse(interaction, error.user_message)
        return
    if style is not None:  # the option wins over a style= typed in the caption
        request = replace(request, lora=style, lora_scale=style_scale)
    service = service_of(interaction)
    await submit_deferred(interaction, lambda target: service.repaint(user_ref(interaction), request, target))


@app_commands.describe(
    song_id="The song id (the number after #)",
    seconds="How many seconds to add",
    caption="What the new part should sound like (optional)",
    style="A house style (see /styles); leave out to keep the song's own",
    style_scale="How strongly the style is applied, 0 to 1 (default 1)",
)
@app_commands.autocomplete(style=style_choices)
async def extend(
    interaction: discord.Interaction,
    song_id: SongId,
    seconds: Seconds,
    caption: str = "",
    style: StyleName | None = None,
    style_scale: Strength | None = None,
) -> None:
    """/extend <song id> <seconds> [caption]."""
    request = ExtendRequest(song_id, seconds, caption.strip(), lora=style, lora_scale=style_scale)
    service = service_of(interaction)
    await submit_deferred(interaction, lambda target: service.extend(user_ref(interaction), request, target))


async def history(interaction: discord.Interaction) -> None:
    """/history, privately."""
    tracks = await service_of(interaction).history(user_ref(interaction))
    await reply_private(interaction, render.history_text(tracks), view=history_view(tracks))


async def queue(interaction: discord.Interaction) -> None:
    """/queue, privately."""
    await reply_private(interaction, await service_of(interaction).queue_info(user_ref(interaction)))


@app_commands.describe(song_id="The song id; leave out for your newest waiting song")
async def cancel(interaction: discord.Interaction, song_id: SongId | None = None) -> None:
    """/cancel [id], privately."""
    job = await service_of(interaction).cancel(user_ref(interaction), song_id)
    await reply_private(interaction, f"🚫 Song #{job.id} is cancelled.")


async def styles(interaction: discord.Interaction) -> None:
    """/styles, privately: the house styles installed."""
    await reply_private(interaction, service_of(interaction).styles_text())


@app_commands.describe(song_id="The song id (the number after #)")
async def lyrics(interaction: discord.Interaction, song_id: SongId) -> None:
    """/lyrics <song id>, privately: the timed lines and an .lrc file."""
    await show_lyrics(interaction, song_id)


async def help_command(interaction: discord.Interaction) -> None:
    """/help, privately."""
    await reply_private(interaction, service_of(interaction).help_text())


# The slash commands in the order Discord lists them: name, description, handler.
SLASH_COMMANDS: tuple[tuple[str, str, Callable[..., Coroutine[Any, Any, None]]], ...] = (
    ("song", "Make a new song from a description", song),
    ("cover", "Re-imagine an uploaded song", cover),
    ("describe", "What is in a recording: caption, bpm, key, lyrics; then make one like it", describe),
    ("reroll", "Make a past song again: its own seed gives the same song", reroll),
    ("repaint", "Make a part of one of your songs again; the rest stays", repaint),
    ("extend", "Make one of your songs longer; what was there stays", extend),
    ("history", "Your latest songs, with re-roll buttons", history),
    ("queue", "Where your songs are in line", queue),
    ("cancel", "Cancel a song that is still waiting", cancel),
    ("styles", "The house styles a song can be made in", styles),
    ("lyrics", "A song's lyrics, each line timed, and an .lrc file", lyrics),
    ("help", "How to use this bot", help_command),
)


async def cover_attachment(interaction: discord.Interaction, file: discord.Attachment, request: CoverRequest) -> None:
    """Check, download and submit the cover of an attachment."""
    service, user = service_of(interaction), user_ref(interaction)
    await submit_upload(interaction, file, "covers", lambda clip, to: service.submit_covers(user, request, clip, to))


async def submit_upload(
    interaction: discord.Interaction,
    file: discord.Attachment,
    what: str,
    submit: Callable[[Clip, DeliveryTarget], Awaitable[JobView | list[JobView]]],
) -> None:
    """Check the declared size, type and length (`what`: covers, clips or DESCRIBED), then defer, download, submit."""
    try:
        service_of(interaction).check_upload(file.size, file.content_type, file.filename, file.duration, what)
    except UserError as error:
        await refuse(interaction, error.user_message)
        return
    await interaction.response.defer(thinking=True)
    try:
        clip = Clip(await file.read(), file.filename)
    except discord.HTTPException:
        await refuse(interaction, "I could not download that file; please try again.")
        return
    await submit_deferred(interaction, lambda target: submit(clip, target))


def is_audio(attachment: discord.Attachment) -> bool:
    """Declared as audio, or named like an audio file (some clients send no content type)."""
    kind = (attachment.content_type or "").lower()
    named = attachment.filename.lower().endswith(AUDIO_SUFFIXES)
    return named or kind.startswith(("audio/", "video/ogg", "video/webm"))
