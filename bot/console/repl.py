"""The local console chat: the same commands as Telegram, typed in a terminal or piped in.

    $ songbot chat
    > /song lo-fi rain at night duration=20
    ⏳ #1 queued (position 1, about 0:10)
    ✅ #1 seed 123 /abs/path/data/blobs/tracks/0000/1-1.mp3

A command runs when its line is entered. To add lyrics, end the /song line with a backslash
and type them on the following lines, ending with an empty line. With piped input, lines
after a command that do not start with "/" are its lyrics, and the chat exits once stdin is
closed and every song it asked for has been delivered.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from bot.core import parser, render
from bot.core.delivery import DeliveryLoop
from bot.core.service import ResultView, SongService
from storage.errors import SongbotError, UserError
from storage.outbox import PENDING
from storage.settings import MIN_DURATION_S
from storage.types import DeliveryTarget, DeliveryView, UserRef

PLATFORM = "console"


class ConsoleMessenger:
    """Prints status changes and results to the terminal."""

    platform = PLATFORM

    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def show_status(self, delivery: DeliveryView, text: str) -> str | None:
        """Print the new status line."""
        self._print(text)
        return None

    async def send_result(self, delivery: DeliveryView, result: ResultView) -> None:
        """Print the caption, then the one line with id, seed and absolute path."""
        self._print(result.caption)
        self._print(render.result_line(result.track, str(result.mp3_path.resolve())))

    async def send_error(self, delivery: DeliveryView, text: str) -> None:
        """Print the failure sentence."""
        self._print(text)

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)


class ConsoleChat:
    """Reads commands, submits them, and waits for their results when input ends."""

    def __init__(self, service: SongService, loop: DeliveryLoop, out: TextIO = sys.stdout,
                 user: UserRef | None = None) -> None:
        self.service = service
        self.loop = loop
        self.out = out
        self.user = user or UserRef(PLATFORM, getpass.getuser(), getpass.getuser())
        self.submitted: list[int] = []
        self.messenger = ConsoleMessenger(out)
        loop.register(self.messenger)

    async def run(self, lines: Callable[[], Awaitable[str]], interactive: bool) -> None:
        """Serve commands from `lines` (returns "" at end of input) until it ends, then drain."""
        stop = asyncio.Event()
        delivery = asyncio.create_task(self.loop.run(stop))
        try:
            await self._read(lines, interactive)
            await self._drain()
        finally:
            stop.set()
            await delivery

    async def _read(self, lines: Callable[[], Awaitable[str]], interactive: bool) -> None:
        pending: list[str] = []
        continued = False
        while True:
            line = await lines()
            if not line:
                break
            text = line.rstrip("\n")
            if text.startswith("/") and not continued:
                await self._flush(pending)
                pending = [text.rstrip("\\").rstrip()]
                continued = interactive and text.endswith("\\")
                if interactive and not continued:
                    pending = await self._flush(pending)
            elif not text.strip():
                pending, continued = await self._flush(pending), False
            elif pending:
                pending.append(text)
            else:
                self._say("Commands start with /; try /help.")
        await self._flush(pending)

    async def _flush(self, pending: list[str]) -> list[str]:
        if pending:
            await self.handle("\n".join(pending))
        return []

    async def _drain(self) -> None:
        """Wait until every submitted job's delivery is done (or failed for good)."""
        while True:
            states = [await asyncio.to_thread(self.service.outbox.for_job, job_id) for job_id in self.submitted]
            if all(state is None or state.state != PENDING for state in states):
                return
            await asyncio.sleep(0.2)

    async def handle(self, text: str) -> None:
        """Run one command and print its reply or its one-sentence refusal."""
        command = parser.parse_command(text)
        if command is None:
            self._say("Commands start with /; try /help.")
            return
        try:
            reply = await self._dispatch(command)
        except UserError as error:
            reply = f"⚠️ {error.user_message}"
        except SongbotError as error:
            reply = f"⚠️ {error.user_message}"
        if reply:
            self._say(reply)

    async def _dispatch(self, command: parser.ParsedCommand) -> str | None:
        target = DeliveryTarget(PLATFORM, "console")
        name = command.name
        if name == "song":
            job = await self.service.submit_song(self.user, parser.parse_song(command), target)
            return self._queued(job.id)
        if name == "cover":
            return await self._cover(command, target)
        if name == "reroll":
            song_id, seed = parser.parse_reroll(command)
            job = await self.service.reroll(self.user, song_id, seed, target)
            return self._queued(job.id)
        return await self._lookup(command)

    async def _cover(self, command: parser.ParsedCommand, target: DeliveryTarget) -> str | None:
        request = parser.parse_cover(command, with_path=True)
        path = Path(request.path or "").expanduser()
        if not path.is_file():
            raise UserError(f"I can't find the file {request.path}.")
        self.service.check_upload(path.stat().st_size, None, path.name)
        data = await asyncio.to_thread(path.read_bytes)
        job = await self.service.submit_cover(self.user, request, data, path.name, target)
        return self._queued(job.id)

    async def _lookup(self, command: parser.ParsedCommand) -> str:
        name = command.name
        if name in ("help", "start"):
            s = self.service.settings
            return render.help_text(s.max_pending_per_user, s.daily_quota, MIN_DURATION_S, s.max_duration_s,
                                    s.max_source_mb, s.upload_retention_days)
        if name == "history":
            return render.history_text(await self.service.history(self.user))
        if name == "queue":
            return await self.service.queue_info(self.user)
        if name == "cancel":
            job = await self.service.cancel(self.user, parser.parse_id_arg(command, "Use /cancel [song id]."))
            return f"🚫 Song #{job.id} is cancelled."
        if name == "lyrics":
            song_id = parser.parse_id_arg(command, "Use /lyrics <song id>.")
            if song_id is None:
                raise UserError("Use /lyrics <song id>.")
            return await self.service.lyrics(song_id)
        if name == "admin":
            action, _, arg = command.args.partition(" ")
            return await self.service.admin(self.user, action, arg)
        raise UserError(f"I don't know /{name}; try /help.")

    def _queued(self, job_id: int) -> None:
        self.submitted.append(job_id)
        return None

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def stdin_lines() -> Callable[[], Awaitable[str]]:
    """An awaitable line reader over stdin that does not block the event loop."""

    async def read() -> str:
        return await asyncio.to_thread(sys.stdin.readline)

    return read
