"""The Telegram commands: parse, validate, submit, acknowledge (the shared layer does the rest).

Every refusal is a ``storage.contract.errors.UserError``; handlers just raise it and ``on_error`` shows its one
sentence (a reply, or an alert for a button). Long work never runs here: jobs go to the queue and the
delivery loop reports back through the adapter's Messenger methods.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from dataclasses import replace

from telegram import BotCommand, Chat, ForceReply, Message, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.core import parser
from bot.core.parser import ParsedCommand
from bot.core.render import captioned_song, format_duration, history_text
from bot.core.service import DESCRIBED, Clip, SongService
from bot.telegram.answers import post_answer
from bot.telegram.describe import NO_RECORDING
from bot.telegram.keyboards import EXTEND, LIKE_THIS, LYRICS, REPAINT, history_keyboard, parse_callback
from bot.telegram.media import NO_SOURCE, Source, find_source
from bot.telegram.status import StatusBoard
from bot.telegram.text import defang
from storage.contract.errors import GENERIC_FAILURE, BadAudio, LimitError, UserError
from storage.contract.text import counted
from storage.contract.types import DeliveryTarget, JobView, UserRef
from storage.settings import Settings

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("song", "Make a song: /song lo-fi rain at night duration=30"),
    BotCommand("cover", "Reply to audio with /cover [style] [strength=0.6] [language=es], new lyrics below"),
    BotCommand("describe", "Reply to audio with /describe: its caption, bpm, key, lyrics"),
    BotCommand("reroll", "Regenerate a song: /reroll <id> [seed]"),
    BotCommand("repaint", "Make a part again: /repaint <id> 0:30-0:45 [caption]"),
    BotCommand("extend", "Make a song longer: /extend <id> <seconds> [caption]"),
    BotCommand("history", "Your recent songs, with re-roll buttons"),
    BotCommand("queue", "Where your songs are in the queue"),
    BotCommand("cancel", "Cancel a queued song: /cancel [id]"),
    BotCommand("lyrics", "A song's lyrics, timed, with an .lrc file: /lyrics <id>"),
    BotCommand("styles", "The house styles: use one with style=<name>"),
    BotCommand("help", "How to use this bot"),
]
ADMIN_COMMAND = BotCommand("admin", "Operators: pause, resume, stats, ban, unban, quota")
NOT_ALLOWED = "Sorry, this bot is not open to you here."
HINT = "Send /song and a description to make a song, for example /song lo-fi rain at night, or /help."
TELEGRAM_HELP = (
    "In groups, address me as /song@{bot}. To cover a song, reply to an audio file, voice note or video "
    "note with /cover [style]; to hear what is in one, reply with /describe."
)
Context = ContextTypes.DEFAULT_TYPE
# The song of the ✏️ question (our own text, asked in reply to the result; the answer replies to it).
REPAINT_QUESTION = re.compile(r"^✏️ Repaint #([0-9]{1,18}):")
ASK_SPAN = (
    "✏️ Repaint #{song}: which part? Reply to this message with <start>-<end> and, if you like, a caption, "
    "for example 0:30-0:45 a guitar solo."
)


class Handlers:
    """The handler callbacks of one bot, sharing its settings, service and status board."""

    def __init__(self, settings: Settings, service: SongService, board: StatusBoard) -> None:
        self.settings = settings
        self.service = service
        self.board = board

    async def gate(self, update: Update, context: Context) -> None:
        """Stop updates from users or groups outside the allowlists (admins always pass)."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None or self._allowed(user.id, chat):
            return
        if update.callback_query:
            await update.callback_query.answer(NOT_ALLOWED, show_alert=True)
        elif chat.type == ChatType.PRIVATE and update.message:
            await update.message.reply_text(NOT_ALLOWED)
        raise ApplicationHandlerStop

    async def start(self, update: Update, context: Context) -> None:
        """Greet and explain."""
        name = update.effective_user.first_name if update.effective_user else "there"
        await _message(update).reply_text(f"Hi {defang(name)}! I make songs.\n\n{self._help(context)}")

    async def help(self, update: Update, context: Context) -> None:
        """Usage with examples, limits and privacy."""
        await _message(update).reply_text(self._help(context))

    async def song(self, update: Update, context: Context) -> None:
        """/song <description> [options], lyrics on the following lines; as a reply to audio, like that clip."""
        message = _message(update)
        request = parser.parse_song(self._command(message, context))
        source = find_source(message)
        like = None
        if source is not None:  # the replied-to recording is the sound the song should have
            self.service.check_upload(source.size_bytes, source.mime, source.filename, source.duration_s, "clips")
            like = Clip(await self._download(source, context), source.filename)
        target = await self._acknowledge(message, "⏳ Got it, queuing your song…")
        await self._submit(target, self.service.submit_songs(_user(update), request, target, like))

    async def repaint(self, update: Update, context: Context) -> None:
        """/repaint [id] <start>-<end> [caption]; the id may come from the result replied to."""
        message = _message(update)
        request = parser.parse_repaint(self._command(message, context), await self._replied_song(message, context))
        await self._repaint(update, message, request)

    async def extend(self, update: Update, context: Context) -> None:
        """/extend [id] <seconds> [caption]; the id may come from the result replied to."""
        message = _message(update)
        request = parser.parse_extend(self._command(message, context), await self._replied_song(message, context))
        adding = counted(request.seconds, "second")
        target = await self._acknowledge(message, f"➕ Extending #{request.song_id} by {adding}…")
        await self._submit(target, self.service.extend(_user(update), request, target))

    async def answer(self, update: Update, context: Context) -> None:
        """A plain-text reply: the part to repaint, when it answers the ✏️ question; else the usual hint."""
        message = _message(update)
        song_id = asked_song(message, context.bot.id)
        if song_id is None:
            if message.chat.type == ChatType.PRIVATE:
                await self.hint(update, context)
            return
        command = ParsedCommand("repaint", (message.text or "").strip(), "")
        await self._repaint(update, message, parser.parse_repaint(command, song_id))

    async def _repaint(self, update: Update, message: Message, request: parser.RepaintRequest) -> None:
        span = f"{format_duration(request.start_s)}-{format_duration(request.end_s)}"
        target = await self._acknowledge(message, f"✏️ Repainting {span} of #{request.song_id}…")
        await self._submit(target, self.service.repaint(_user(update), request, target))

    async def reroll(self, update: Update, context: Context) -> None:
        """/reroll <id> [seed]: the same song again (its own seed) or a sibling."""
        message = _message(update)
        song_id, seed = parser.parse_reroll(self._command(message, context))
        target = await self._acknowledge(message, f"🎲 Re-rolling #{song_id}…")
        await self._submit(target, self.service.reroll(_user(update), song_id, seed, target))

    async def cover(self, update: Update, context: Context) -> None:
        """/cover [style] [strength=…] [language=…] + lyrics lines, as a reply to audio: checked before downloading."""
        message = _message(update)
        request = parser.parse_cover(self._command(message, context))
        source = find_source(message)
        if source is None:
            raise UserError(NO_SOURCE)
        self.service.check_upload(source.size_bytes, source.mime, source.filename, source.duration_s)
        await message.reply_chat_action(ChatAction.TYPING)
        data = await self._download(source, context)
        # No status message yet: a refusal is then the only answer, and the delivery loop posts the status.
        target = _target(message, reply_to=message.message_id)
        await self.service.submit_cover(_user(update), request, data, source.filename, target)

    async def describe(self, update: Update, context: Context) -> None:
        """/describe as a reply to audio (or as an upload's caption): checked like a cover's before downloading."""
        message = _message(update)
        self._command(message, context)
        source = find_source(message)
        if source is None:
            raise UserError(NO_RECORDING)
        self.service.check_upload(source.size_bytes, source.mime, source.filename, source.duration_s, DESCRIBED)
        await message.reply_chat_action(ChatAction.TYPING)
        clip = Clip(await self._download(source, context), source.filename)
        target = _target(message, reply_to=message.message_id)  # the delivery loop posts the status
        await self.service.submit_describe(_user(update), clip, target)

    async def history(self, update: Update, context: Context) -> None:
        """Your recent songs, each with a re-roll button."""
        tracks = await self.service.history(_user(update), limit=10)
        keyboard = history_keyboard((t.job_id, t.title) for t in tracks)
        await _message(update).reply_text(defang(history_text(tracks)), reply_markup=keyboard)

    async def styles(self, update: Update, context: Context) -> None:
        """/styles: the house styles installed (style=<name> on /song, /cover, /repaint, /extend)."""
        await _message(update).reply_text(defang(await asyncio.to_thread(self.service.styles_text)))

    async def queue(self, update: Update, context: Context) -> None:
        """Where your jobs are, with an ETA."""
        await _message(update).reply_text(defang(await self.service.queue_info(_user(update))))

    async def cancel(self, update: Update, context: Context) -> None:
        """/cancel [id]: cancel a queued job (your newest when no id is given)."""
        command = self._command(_message(update), context)
        job_id = parser.parse_id_arg(command, "Use /cancel or /cancel <song id>, for example: /cancel 12")
        job = await self.service.cancel(_user(update), job_id)
        await _message(update).reply_text(f"Cancelled #{job.id}.")

    async def lyrics(self, update: Update, context: Context) -> None:
        """/lyrics <id>."""
        command = self._command(_message(update), context)
        song_id = parser.parse_id_arg(command, "Use /lyrics <song id>, for example: /lyrics 12")
        if song_id is None:
            raise UserError("Use /lyrics <song id>, for example: /lyrics 12")
        await self._send_lyrics(_message(update), _user(update), song_id)

    async def admin(self, update: Update, context: Context) -> None:
        """/admin pause|resume|stats|ban|unban|quota (the service checks that the caller is an admin)."""
        command = self._command(_message(update), context)
        answer = await self.service.admin(_user(update), parser.parse_admin(command.args))
        await _message(update).reply_text(defang(answer))

    async def hint(self, update: Update, context: Context) -> None:
        """Point someone who wrote something else (in a private chat) at the commands."""
        await _message(update).reply_text(HINT)

    async def button(self, update: Update, context: Context) -> None:
        """🎲 Re-roll (a new seed) or 📝 Lyrics under a result; every press is answered."""
        query = update.callback_query
        assert query is not None
        parsed = parse_callback(query.data)
        if parsed is None or not isinstance(query.message, Message):
            await query.answer("This button no longer works.")
            return
        action, song_id = parsed
        if action == LYRICS:
            await query.answer()
            await self._send_lyrics(query.message, _user(update), song_id)
            return
        if action == REPAINT:
            await query.answer()
            await query.message.reply_text(ASK_SPAN.format(song=song_id), reply_markup=ForceReply(selective=True))
            return
        target = _target(query.message, reply_to=query.message.message_id)
        if action == LIKE_THIS:
            song = await self.service.make_like(_user(update), song_id, target)
            await query.answer(f"🎵 Making #{song.id}, a song like #{song_id}…")
            return
        if action == EXTEND:
            seconds = await self.service.extend_button_seconds(song_id)
            await self.service.extend(_user(update), parser.ExtendRequest(song_id, seconds), target)
            await query.answer(f"➕ Extending #{song_id} by {counted(seconds, 'second')}…")
            return
        await self.service.reroll(_user(update), song_id, None, target)
        await query.answer(f"🎲 Re-rolling #{song_id} with a new seed…")

    async def on_error(self, update: object, context: Context) -> None:
        """Show a refusal as one sentence; log anything else and apologise without details."""
        error = context.error
        if not isinstance(error, UserError):
            log.error("telegram handler failed", exc_info=error)
        text = error.user_message if isinstance(error, UserError) else GENERIC_FAILURE
        if not isinstance(update, Update):
            return
        if update.callback_query:
            await update.callback_query.answer(text[:200], show_alert=True)
        elif update.effective_message:
            await update.effective_message.reply_text(defang(text))

    # ---- helpers ---------------------------------------------------------------------------------------

    def _allowed(self, user_id: int, chat: Chat) -> bool:
        if self.settings.is_admin("telegram", str(user_id)):
            return True
        if not self.settings.user_allowed("telegram", str(user_id)):
            return False
        # Private chats are governed by the user list; the chat list is for groups.
        return chat.type == ChatType.PRIVATE or self.service.chat_allowed("telegram", str(chat.id))

    def _help(self, context: Context) -> str:
        return f"{self.service.help_text()}\n\n{TELEGRAM_HELP.format(bot=context.bot.username)}"

    def _command(self, message: Message, context: Context) -> ParsedCommand:
        command = parser.parse_command(message.text or message.caption or "", context.bot.username)
        if command is None:  # a captioned "/cover@otherbot": not for us
            raise ApplicationHandlerStop
        return command

    async def _download(self, source: Source, context: Context) -> bytes:
        try:
            tg_file = await context.bot.get_file(source.file_id)
        except BadRequest as exc:
            if "too big" in exc.message.lower():
                raise LimitError("That file is too big for me to download.") from exc
            raise BadAudio("I could not fetch that file from Telegram; please send it again.") from exc
        data = bytes(await tg_file.download_as_bytearray())
        self.service.check_upload(len(data), source.mime, source.filename)  # Telegram may not know the size
        return data

    async def _acknowledge(self, message: Message, text: str) -> DeliveryTarget:
        """Answer at once with the job's status message; the delivery loop edits it from here on."""
        target = _target(message, reply_to=message.message_id)
        status_id = await self.board.create(
            message.chat_id, text, reply_to=message.message_id, thread_id=target.extra.get("thread_id")
        )
        return replace(target, status_message_id=str(status_id))

    async def _submit(self, target: DeliveryTarget, submitted: Awaitable[JobView | list[JobView]]) -> None:
        """Await a submission; a refusal replaces the acknowledgement, so the user sees one sentence."""
        try:
            await submitted
        except UserError as exc:
            sentence = exc.user_message
        except Exception:
            log.exception("submitting a job failed", extra={"chat": target.chat_id})
            sentence = GENERIC_FAILURE
        else:
            return
        assert target.status_message_id is not None
        await self.board.edit_now(int(target.chat_id), int(target.status_message_id), defang(sentence))

    async def _replied_song(self, message: Message, context: Context) -> int | None:
        """The song of the result or the ✏️ question of ours that `message` replies to, or None.

        A result is found by its message id, which the delivery loop stores once the post returns; a
        reply that comes before that (or to a result posted before ids were kept) is found by the
        `#id · seed n` line of our caption. Either way the owner is checked when the edit is made.
        """
        replied = _replied_to_us(message, context.bot.id)
        if replied is None:
            return None
        song = await self.service.song_of_result("telegram", str(replied.chat_id), str(replied.message_id))
        if song is None:
            song = captioned_song(replied.caption)
        return song if song is not None else asked_song(message, context.bot.id)

    async def _send_lyrics(self, message: Message, user: UserRef, song_id: int) -> None:
        """The timed lines and the .lrc, or the sentence; a song stored untimed is timed first (a job)."""
        target = _target(message, reply_to=message.message_id)
        answer = await self.service.lyrics_for(user, song_id, target)
        answer = replace(answer, text=f"📝 {answer.text}")
        thread_id = message.message_thread_id if message.is_topic_message else None
        await post_answer(message.get_bot(), message.chat_id, answer, message.message_id, thread_id)


def _replied_to_us(message: Message, bot_id: int) -> Message | None:
    """The message of ours that `message` replies to, or None."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.id != bot_id:
        return None
    return replied


def asked_song(message: Message, bot_id: int) -> int | None:
    """The song of the ✏️ question that `message` answers, or None."""
    replied = _replied_to_us(message, bot_id)
    match = REPAINT_QUESTION.match(replied.text or "") if replied is not None else None
    return int(match[1]) if match else None


def _message(update: Update) -> Message:
    assert update.effective_message is not None
    return update.effective_message


def _user(update: Update) -> UserRef:
    user = update.effective_user
    assert user is not None
    return UserRef("telegram", str(user.id), user.full_name)


def _target(message: Message, reply_to: int | None) -> DeliveryTarget:
    extra = {"thread_id": message.message_thread_id} if message.is_topic_message else {}
    return DeliveryTarget("telegram", str(message.chat_id), str(reply_to) if reply_to else None, extra=extra)
