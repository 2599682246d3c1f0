"""The local console chat: the same commands as Telegram, typed in a terminal or piped in.

    $ songbot chat
    🎵 songbot chat: type /help for the commands, /quit or Ctrl-C to leave. Log: data/songbot.log
    > /song lo-fi rain at night duration=20
    ⏳ #1 queued (position 1, about 0:10)
    ✅ #1 seed 123 /abs/path/data/blobs/tracks/0000/1-1.mp3

In a terminal it behaves like a shell tool: one welcome line, a prompt, `/quit`, Ctrl-D or
Ctrl-C to leave at once (songs still being made are shown the next time the chat starts). A
command runs when its line is entered; to add lyrics, end the /song line with a backslash and
type them on the following lines, ending with an empty line.

With piped input there is no prompt: lines after a command that do not start with "/" are its
lyrics, and the chat exits once stdin is closed and every song it asked for has been delivered.
"""

from __future__ import annotations

import asyncio
import codecs
import getpass
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from bot.core import parser, render
from bot.core.answers import Answer
from bot.core.delivery import DeliveryLoop, with_repeat_note
from bot.core.describe import Described, describe_text, song_line
from bot.core.service import DESCRIBED, Clip, ResultView, SongService
from bot.core.uploads import UploadSweeper
from storage.contract.errors import GENERIC_FAILURE, SongbotError, UserError
from storage.contract.types import DeliveryTarget, DeliveryView, JobView, UserRef
from storage.queue.outbox import PENDING
from storage.settings import MIN_DURATION_S, Settings

log = logging.getLogger("songbot.console")

PLATFORM = "console"
PROMPT = "> "
MORE = "… "  # the prompt while lyrics are being typed
CLEAR_LINE = "\r\x1b[K"
WELCOME = "🎵 songbot chat: type /help for the commands, /quit or Ctrl-C to leave. Songs by {backend}."
NOT_A_COMMAND = "Commands start with /; try /help."

HELP = """\
/song <description> [duration=30 bpm=90 key="F# minor" seed=7 language=en instrumental=true timesig=3/4]
  A new song. For lyrics, end the line with \\ and type them on the next lines; an empty line sends it.
/cover <file path> [style] [strength=0.6 language=es instrumental=true]
  A cover of an audio file on this computer, e.g. /cover ~/Music/take.mp3 bossa nova
  (strength: how closely it follows the original, 0 to 1). For new words, end the line with \\
  and type them on the next lines (language=: the language they are sung in).
/reroll <song id> [seed] — a new take of the song (new seed); with its own seed, exactly the same song.
  takes=2 on /song or /cover makes 2 (up to 4) at once; like=<file path> on /song makes it sound like that clip.
  best=3 on /song or /cover makes 3 takes (2 to 4), scores them and prints only the best (each counts as a song).
/repaint <song id> <start>-<end> [caption] — make a part again (seconds or m:ss, e.g. /repaint 3 0:08-0:12 a solo).
/extend <song id> <seconds> [caption] — make a song longer; what was there stays.
/history — your latest songs.   /queue — where your songs are in line.   /cancel [id] — cancel a waiting song.
/styles — the house styles; style=<name> [style_scale=0.7] on /song, /cover, /repaint or /extend uses one.
/lyrics <id> — a song's lyrics, each line timed [mm:ss.xx]; writes <song>.lrc beside its MP3 for music players.
/describe <file path> — what the model hears in a recording (caption, bpm, key, lyrics…), and the /song
  line that makes one like it, ready to paste.
/quit — leave (Ctrl-C and Ctrl-D too).
Every result ends with the path of its MP3 file, under {tracks}. Songs by {backend}.
{limits}
{uploads}"""


def console_help(settings: Settings, backend: str = "auto") -> str:
    """The console's own /help: file paths instead of attachments, a backslash for lyrics, /quit."""
    days = settings.upload_retention_days
    uploads: object = settings.blob_dir.resolve() / "uploads"
    tracks = settings.blob_dir.resolve() / "tracks"
    if settings.blob_url:  # the store keeps them; results are local copies
        uploads = f"{settings.blob_url.rstrip('/')}/uploads"
        tracks = settings.blob_work_dir.resolve() / "cache" / "tracks"
    if days > 0:
        kept = (
            f"A file you cover is copied to {uploads}; the copy is deleted after {render.days_text(days)}, "
            "and after that its covers can't be re-rolled."
        )
    else:
        kept = f"A file you cover is copied to {uploads} and kept there."
    limits = render.limits_text(
        settings.max_pending_per_user,
        settings.daily_quota,
        MIN_DURATION_S,
        settings.max_duration_s,
        settings.max_source_mb,
    )
    return HELP.format(tracks=tracks, limits=limits, uploads=kept, backend=render.backend_text(backend))


class Terminal:
    """Where the chat prints: keeps a shown prompt below any line printed while it waits."""

    def __init__(self, out: TextIO, interactive: bool) -> None:
        self.out = out
        self.interactive = interactive
        self.prompt = ""  # the prompt now on screen, "" when none

    def say(self, text: str) -> None:
        """Print one message (above the prompt, when one is shown)."""
        if self.prompt:
            self.out.write(CLEAR_LINE)
        self.out.write(text + "\n")
        if self.prompt:
            self.out.write(self.prompt)
        self.out.flush()

    def ask(self, prompt: str) -> None:
        """Show the prompt before reading a line (only in a terminal)."""
        if self.interactive:
            self.prompt = prompt
            self.out.write(prompt)
            self.out.flush()

    def answered(self) -> None:
        """A line was read: the prompt is gone (the terminal moved to a new line)."""
        self.prompt = ""

    def leave(self) -> None:
        """End a prompt line left open (by Ctrl-C or Ctrl-D)."""
        if self.prompt:
            self.out.write("\n")
            self.out.flush()
        self.prompt = ""


class ConsoleMessenger:
    """Prints status changes and results to the terminal."""

    platform = PLATFORM

    def __init__(self, terminal: Terminal, local_path: Callable[[str], Path] | None = None) -> None:
        self.terminal = terminal
        self.local_path = local_path  # a blob's local file: where an answer's file goes beside its song
        self.cancelled_here: set[int] = set()  # the chat already said so: no second message

    async def show_status(self, delivery: DeliveryView, text: str) -> str | None:
        """Print the new status line."""
        self.terminal.say(text)
        return None

    async def send_result(self, delivery: DeliveryView, result: ResultView) -> None:
        """Print the caption, then the one line with id, seed and absolute path."""
        self.terminal.say(with_repeat_note(delivery, result.caption))
        self.terminal.say(render.result_line(result.track, str(result.mp3_path.resolve())))

    async def send_error(self, delivery: DeliveryView, text: str) -> None:
        """Print the failure sentence (not for a job this chat's /cancel already answered)."""
        if delivery.job_id in self.cancelled_here:
            self.cancelled_here.discard(delivery.job_id)
            return
        self.terminal.say(text)

    async def send_notice(self, delivery: DeliveryView, text: str) -> None:
        """Print the sentence."""
        self.terminal.say(text)

    async def send_description(self, delivery: DeliveryView, described: Described) -> None:
        """Print what was heard, then "Make one like this" as the ready `/song` line (lyrics on the next lines)."""
        self.terminal.say(with_repeat_note(delivery, describe_message(described)))

    async def send_answer(self, delivery: DeliveryView, answer: Answer) -> None:
        """Print the answer; its file is written beside the song's MP3, and its path printed."""
        self.terminal.say(with_repeat_note(delivery, answer.text))
        await self.show_answer_file(answer)

    async def show_answer_file(self, answer: Answer) -> None:
        """Write an answer's file (`song-12.lrc`) beside its song's MP3 and print its absolute path."""
        if answer.attachment is None or answer.song is None or self.local_path is None:
            return
        mp3 = await asyncio.to_thread(self.local_path, answer.song.blob_path)
        path = mp3.with_name(f"{mp3.stem}{Path(answer.attachment.filename).suffix}").resolve()
        await asyncio.to_thread(path.write_bytes, answer.attachment.data)
        self.terminal.say(f"📝 {path}")


def describe_message(described: Described) -> str:
    """The console's description: the text, then the `/song` command that makes one like it."""
    return f"{describe_text(described)}\nMake one like this:\n{song_line(described.like)}"


class ConsoleChat:
    """Reads commands, submits them, and prints what the delivery loop hands over."""

    def __init__(
        self,
        service: SongService,
        loop: DeliveryLoop,
        out: TextIO = sys.stdout,
        user: UserRef | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.service = service
        self.loop = loop
        self.out = out
        self.user = user or UserRef(PLATFORM, getpass.getuser(), getpass.getuser())
        self.log_path = log_path
        self.submitted: list[int] = []
        self.terminal = Terminal(out, interactive=False)
        self.messenger = ConsoleMessenger(self.terminal, service.blobs.local_path)
        self.quitting = asyncio.Event()
        loop.register(self.messenger)

    def notice(self, text: str) -> None:
        """Print a message that is not the answer to a command (the engine's restarts)."""
        self._say(text)

    def quit(self) -> None:
        """Leave now (/quit, Ctrl-C): stop reading and waiting; undelivered songs wait for the next start."""
        self.quitting.set()

    async def run(self, lines: Callable[[], Awaitable[str]], interactive: bool) -> None:
        """Serve commands from `lines` (returns "" at end of input) until it ends or `quit()`."""
        self.terminal.interactive = interactive
        if interactive:
            welcome = WELCOME.format(backend=render.backend_text(self.service.backend))
            self.terminal.say(welcome + (f" Log: {self.log_path}" if self.log_path else ""))
        stop = asyncio.Event()
        background = [
            asyncio.create_task(self.loop.run(stop)),
            asyncio.create_task(UploadSweeper.for_service(self.service).run(stop)),
        ]
        session = asyncio.create_task(self._session(lines, interactive))
        quitting = asyncio.create_task(self.quitting.wait())
        try:
            await asyncio.wait({session, quitting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (session, quitting):
                task.cancel()
            await asyncio.gather(session, quitting, return_exceptions=True)
            self.terminal.leave()
            stop.set()
            await asyncio.gather(*background)
        if not session.cancelled():
            session.result()  # raises what the session raised
        await self._say_what_is_left()

    async def _session(self, lines: Callable[[], Awaitable[str]], interactive: bool) -> None:
        await self._read(lines, interactive)
        if not interactive:  # piped: wait for every song asked for; in a terminal, Ctrl-D leaves at once
            await self._drain()

    async def _read(self, lines: Callable[[], Awaitable[str]], interactive: bool) -> None:
        pending: list[str] = []
        continued = False
        while not self.quitting.is_set():
            self.terminal.ask(MORE if continued else PROMPT)
            line = await lines()
            if not line:
                break
            self.terminal.answered()
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
                self._say(NOT_A_COMMAND)
        await self._flush(pending)

    async def _flush(self, pending: list[str]) -> list[str]:
        if pending and not self.quitting.is_set():
            await self.handle("\n".join(pending))
        return []

    async def _undelivered(self) -> list[int]:
        """This session's songs whose delivery is still open."""
        left = []
        for job_id in self.submitted:
            delivery = await asyncio.to_thread(self.service.outbox.for_job, job_id)
            if delivery is not None and delivery.state == PENDING:
                left.append(job_id)
        return left

    async def _drain(self) -> None:
        """Wait until every submitted job's delivery is done (or failed for good)."""
        while await self._undelivered():
            await asyncio.sleep(0.2)

    async def _say_what_is_left(self) -> None:
        left = await self._undelivered()
        if left:
            ids = ", ".join(f"#{job_id}" for job_id in left)
            self._say(f"Not finished yet: {ids}; they are shown the next time you start songbot chat.")

    async def handle(self, text: str) -> None:
        """Run one command and print its reply or its one-sentence refusal."""
        command = parser.parse_command(text)
        if command is None:
            self._say(NOT_A_COMMAND)
            return
        try:
            reply = await self._dispatch(command)
        except SongbotError as error:
            reply = f"⚠️ {error.user_message}"
        except Exception:
            log.exception("console command failed", extra={"command": command.name})
            reply = f"⚠️ {GENERIC_FAILURE}"
        if reply:
            self._say(reply)

    async def _dispatch(self, command: parser.ParsedCommand) -> str | None:
        target = DeliveryTarget(PLATFORM, "console")
        name = command.name
        if name in ("quit", "exit"):
            self.quit()
            return None
        if name == "song":
            request = parser.parse_song(command, with_path=True)
            like = await self._clip(request.like_path, "like") if request.like_path else None
            return self._queued(*await self.service.submit_songs(self.user, request, target, like))
        if name == "cover":
            return await self._cover(command, target)
        if name == "describe":
            return await self._describe(command, target)
        if name == "reroll":
            song_id, seed = parser.parse_reroll(command)
            return self._queued(await self.service.reroll(self.user, song_id, seed, target))
        if name == "repaint":
            return self._queued(await self.service.repaint(self.user, parser.parse_repaint(command), target))
        if name == "extend":
            return self._queued(await self.service.extend(self.user, parser.parse_extend(command), target))
        return await self._lookup(command)

    async def _clip(self, given: str, what: str) -> Clip:
        """A recording on this computer, checked by size and type before it is read."""
        path = Path(given).expanduser()
        if not path.is_file():
            raise UserError(f"I can't find the file {given}.")
        checked = {"like": "clips", "cover": "covers"}.get(what, what)
        self.service.check_upload(path.stat().st_size, None, path.name, what=checked)
        return Clip(await asyncio.to_thread(path.read_bytes), path.name)

    async def _cover(self, command: parser.ParsedCommand, target: DeliveryTarget) -> str | None:
        request = parser.parse_cover(command, with_path=True)
        clip = await self._clip(request.path or "", "cover")
        return self._queued(*await self.service.submit_covers(self.user, request, clip, target))

    async def _describe(self, command: parser.ParsedCommand, target: DeliveryTarget) -> str | None:
        clip = await self._clip(parser.parse_describe_path(command), DESCRIBED)
        return self._queued(await self.service.submit_describe(self.user, clip, target))

    async def _lookup(self, command: parser.ParsedCommand) -> str | None:
        name = command.name
        if name in ("help", "start"):
            return console_help(self.service.settings, self.service.backend)
        if name == "history":
            return render.history_text(await self.service.history(self.user))
        if name == "styles":
            return await asyncio.to_thread(self.service.styles_text)
        if name == "queue":
            return await self.service.queue_info(self.user)
        if name == "cancel":
            song_id = parser.parse_id_arg(command, "Use /cancel [song id].")
            job = await self.service.cancel(self.user, song_id)
            self.messenger.cancelled_here.add(job.id)
            return f"🚫 Song #{job.id} is cancelled."
        if name == "lyrics":
            await self._lyrics(command)
            return None
        if name == "admin":
            return await self.service.admin(self.user, parser.parse_admin(command.args))
        raise UserError(f"I don't know /{name}; try /help.")

    async def _lyrics(self, command: parser.ParsedCommand) -> None:
        """/lyrics <id>: the timed lines and `<song>.lrc` beside the MP3 (or the timing job that makes them)."""
        song_id = parser.parse_id_arg(command, "Use /lyrics <song id>.")
        if song_id is None:
            raise UserError("Use /lyrics <song id>.")
        answer = await self.service.lyrics_for(self.user, song_id, DeliveryTarget(PLATFORM, "console"))
        self._say(answer.text)
        if answer.queued is not None:
            self._queued(answer.queued)
        await self.messenger.show_answer_file(answer)

    def _queued(self, *jobs: JobView) -> str | None:
        self.submitted.extend(job.id for job in jobs)
        return None

    def _say(self, text: str) -> None:
        self.terminal.say(text)


class StdinLines:
    """Lines of stdin for the event loop, read by a daemon thread.

    The thread reads the file descriptor itself (no lock of `sys.stdin` is held), so Ctrl-C or
    /quit never waits for a pending read, and the process exits without Enter being pressed.
    """

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.queue: asyncio.Queue[str] | None = None

    async def __call__(self) -> str:
        """The next line with its newline, or "" at the end of input."""
        if self.queue is None:
            self.queue = asyncio.Queue()
            loop = asyncio.get_running_loop()
            threading.Thread(target=self._pump, args=(loop, self.queue), name="stdin", daemon=True).start()
        return await self.queue.get()

    def _pump(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        buffered = ""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            buffered += decoder.decode(chunk, final=not chunk)
            *complete, buffered = buffered.split("\n")
            lines = [line + "\n" for line in complete]
            if not chunk:  # end of input: the last line without a newline, then ""
                lines += [buffered, ""] if buffered else [""]
            for line in lines:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, line)
                except RuntimeError:  # the loop is closed: the chat is over
                    return
            if not chunk:
                return


def stdin_lines() -> Callable[[], Awaitable[str]]:
    """An awaitable line reader over stdin that never blocks the event loop or the exit."""
    return StdinLines()
