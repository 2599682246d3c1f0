"""The console chat in-process: prompt and welcome line, its own /help, /quit, one message per cancel."""

import asyncio
import io
import os

import pytest

from bot.console.repl import MORE, PROMPT, WELCOME, ConsoleChat, StdinLines
from bot.core.delivery import DeliveryLoop
from bot.core.service import SongService
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
    assert first == f"{WELCOME} Log: {service.settings.data_dir / 'songbot.log'}"
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
