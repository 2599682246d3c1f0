"""The console chat in-process: prompt and welcome line, its own /help, /quit, one message per cancel."""

import asyncio
import io
import os
from dataclasses import replace
from pathlib import Path

import pytest

from bot.console.repl import MORE, PROMPT, WELCOME, ConsoleChat, ConsoleMessenger, StdinLines, Terminal
from bot.core import render
from bot.core.delivery import REPEAT_NOTE, DeliveryLoop
from bot.core.service import ResultView, SongService
from storage.contract.types import DeliveryView, TrackView
from tests.helpers import make_settings


@pytest.fixture
def service(tmp_path):
    return SongService.from_settings(make_settings(tmp_path, upload_retention_days=7))


def feed(*lines):
    """A line reader that returns `lines`, then waits for ever (a terminal nobody types into)."""
    queue = list(lines)

    async def read():
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()

    return read


async def chat_output(service, *lines, interactive=True, timeout=10):
    out = io.StringIO()
    chat = ConsoleChat(service, DeliveryLoop(service), out=out, log_path=service.settings.data_dir / "songbot.log")
    await asyncio.wait_for(chat.run(feed(*lines), interactive=interactive), timeout)
    return out.getvalue()


async def test_a_terminal_gets_one_welcome_line_and_a_prompt_and_quit_leaves(service):
    out = await chat_output(service, "/quit\n")
    first, rest = out.split("\n", 1)
    welcome = WELCOME.format(backend="the sketch synthesizer (no model weights), simple stand-ins for ACE-Step's songs")
    assert first == f"{welcome} Log: {service.settings.data_dir / 'songbot.log'}"
    assert rest.startswith(PROMPT) and rest.count(PROMPT) == 1


async def test_lyrics_lines_get_the_continuation_prompt(service):
    out = await chat_output(
        service, "/song folk song about trains duration=10 \\\n", "[verse]\n", "the train is late\n", "\n", "/quit\n"
    )
    assert out.count(MORE) == 3
    assert "Not finished yet: #1; they are shown the next time you start songbot chat." in out
    [job] = service.queue.pending_of(1)
    assert job.spec.lyrics == "[verse]\nthe train is late"


async def test_piped_input_has_no_prompt_or_welcome(service):
    out = await chat_output(service, "/history\n", "", interactive=False)
    assert out == "You have no songs yet; try /song lo-fi rain at night\n"


async def test_help_is_the_consoles_own(service):
    out = await chat_output(service, "/help\n", "/quit\n")
    assert "/cover <file path>" in out and "end the line with \\" in out and "/quit" in out
    uploads = service.settings.blob_dir.resolve() / "uploads"
    assert f"copied to {uploads}; the copy is deleted after 7 days" in out
    assert "reply to a song" not in out, "no Telegram wording"
    assert "Songs by the sketch synthesizer (no model weights)" in out


async def test_a_cancel_gets_one_message(service):
    out = await chat_output(service, "/song rain duration=10\n", "/cancel\n", "", interactive=False)
    assert out.count("cancelled") == 1 and "🚫 Song #1 is cancelled." in out
    assert service.outbox.for_job(1).state == "done", "the delivery was still completed"


async def test_quit_does_not_wait_for_a_read_that_never_returns(service):
    chat = ConsoleChat(service, DeliveryLoop(service), out=io.StringIO())
    task = asyncio.create_task(chat.run(feed(), interactive=True))
    await asyncio.sleep(0.1)
    chat.quit()
    await asyncio.wait_for(task, timeout=2)


async def test_stdin_lines_reads_whole_lines_from_the_descriptor():
    read_end, write_end = os.pipe()
    os.write(write_end, "/song caf\u00e9 \\\nla la\nlast".encode())
    os.close(write_end)
    lines = StdinLines(read_end)
    assert [await lines() for _ in range(4)] == ["/song café \\\n", "la la\n", "last", ""]
    os.close(read_end)


@pytest.mark.parametrize(
    ("line", "sentence"),
    [
        ("/lyrics ²", "⚠️ Use /lyrics <song id>."),
        ("/lyrics 99999999999999999999", "⚠️ Use /lyrics <song id>."),
        ("/cancel ２", "⚠️ Use /cancel [song id]."),
        ("/reroll 99999999999999999999", "⚠️ song id must be a whole number, not '99999999999999999999'."),
        ("/reroll 2147483648", "⚠️ song id must be between 1 and 2147483647."),
        ("/reroll ²", "⚠️ song id must be a whole number written with the digits 0-9, not '²'."),
        ("/reroll -3", "⚠️ song id must be between 1 and 2147483647."),
        ("/song rain duration=", "⚠️ Give duration= a value, with no space after the = sign."),
    ],
)
async def test_odd_ids_and_numbers_get_one_sentence(service, line, sentence):
    out = await chat_output(service, f"{line}\n", "/history\n", "", interactive=False)
    assert out.splitlines() == [sentence, "You have no songs yet; try /song lo-fi rain at night"]


async def test_an_unexpected_error_is_one_sentence_and_the_chat_goes_on(service, monkeypatch):
    async def broken(user, song_id, target):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(service, "lyrics_for", broken)
    out = await chat_output(service, "/lyrics 5\n", "/history\n", "", interactive=False)
    assert out.splitlines() == [
        "⚠️ Something went wrong on our side while making this song; please try again.",
        "You have no songs yet; try /song lo-fi rain at night",
    ]


async def test_a_result_shown_again_after_an_interrupted_session_says_it_may_be_a_repeat(monkeypatch):
    shown: list[str] = []
    messenger = ConsoleMessenger(Terminal(io.StringIO(), interactive=False))
    monkeypatch.setattr(messenger.terminal, "say", shown.append)
    monkeypatch.setattr(render, "result_line", lambda track, path: "✅ #7 seed 1 /x.mp3")
    delivery = DeliveryView(1, 7, "console", "me", None, None, None, None, {}, "pending", None, None, 0)
    result = ResultView(7, TrackView.__new__(TrackView), "🎵 Rain\n#7 · seed 1", Path("x.mp3"))
    await messenger.send_result(delivery, result)
    await messenger.send_result(replace(delivery, resends=1), result)
    assert shown[0] == "🎵 Rain\n#7 · seed 1" and shown[2] == f"{REPEAT_NOTE}\n🎵 Rain\n#7 · seed 1"
