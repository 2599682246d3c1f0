"""The Telegram adapter: a python-telegram-bot 22 ``Application`` and songbot's Messenger for Telegram.

Run it through ``bot.runner`` (``songbot run`` starts it when ``TELEGRAM_TOKEN`` is set)::

    adapter = TelegramAdapter(settings, service)
    await adapter.start()        # getMe, setMyCommands, then long polling (or the webhook server)
    delivery_loop.register(adapter)
    ...
    await adapter.stop()

Incoming: the handlers in ``handlers.py`` parse, validate and submit. Outgoing: the delivery loop calls
``show_status``/``send_result``/``send_error``. Flood control: ``AIORateLimiter`` keeps the global and group
limits and retries a 429 after its ``retry_after``; status edits are spaced per chat by the ``StatusBoard``.
The API base URLs are settings, so a self-hosted Bot API server (or the tests' fake one) can be used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from telegram import Bot, BotCommandScopeChat, Message, ReplyParameters, Update
from telegram.constants import ChatAction, FileSizeLimit
from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.core.answers import Answer
from bot.core.delivery import PostUncertain, with_repeat_note
from bot.core.describe import Described
from bot.core.service import ResultView, SongService
from bot.telegram.answers import post_answer
from bot.telegram.describe import describe_message
from bot.telegram.handlers import ADMIN_COMMAND, COMMANDS, Handlers
from bot.telegram.keyboards import CALLBACK_PATTERN, result_keyboard
from bot.telegram.status import StatusBoard
from bot.telegram.text import caption, defang
from bot.telegram.webhook import WebhookServer, webhook_secret
from storage.contract.types import DeliveryView
from storage.media.audio import fit_mp3
from storage.settings import Settings

log = logging.getLogger(__name__)

PERFORMER = "SongBot"
POLL_TIMEOUT_S = 10  # long-poll length: one cheap request every 10 s while idle
MAX_RETRIES_429 = 5
UPLOAD_TIMEOUT_S = 120.0
CHAT_ACTION_EVERY_S = 4.0  # Telegram shows a chat action for 5 s
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
NOT_EDITED = ~filters.UpdateType.EDITED_MESSAGE  # editing an old /song must not make a second song
COVER_SOURCES = filters.AUDIO | filters.VOICE | filters.VIDEO_NOTE | filters.Document.ALL


class TelegramAdapter:
    """One Telegram bot: receives commands, and shows statuses and results for the delivery loop."""

    platform = "telegram"

    def __init__(self, settings: Settings, service: SongService) -> None:
        if settings.telegram_token is None:
            raise ValueError("TelegramAdapter needs TELEGRAM_TOKEN")
        self.settings = settings
        silence_request_logs()
        self.application = _build_application(settings)
        self.board = StatusBoard(self.application.bot, settings.status_edit_interval_s)
        self.handlers = Handlers(settings, service, self.board)
        _install(self.application, self.handlers)
        self._webhook: WebhookServer | None = None

    async def start(self) -> None:
        """Connect (getMe), publish the command menu, and start receiving updates."""
        await self.application.initialize()
        await self._publish_commands()
        await self.application.start()
        if self.settings.telegram_webhook_url:
            await self._start_webhook()
        else:
            assert self.application.updater is not None
            await self.application.updater.start_polling(
                poll_interval=0, timeout=POLL_TIMEOUT_S, allowed_updates=ALLOWED_UPDATES
            )
        log.info("telegram bot started", extra={"bot": self.application.bot.username})

    async def stop(self) -> None:
        """Stop receiving, let pending status edits land, and close the HTTP client."""
        if self._webhook is not None:
            await self._webhook.stop()
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.board.close()
        await self.application.shutdown()

    # ---- Messenger ------------------------------------------------------------------------------------

    async def show_status(self, delivery: DeliveryView, text: str) -> str | None:
        """Create the job's status message, or ask the board to edit it (throttled per chat)."""
        chat_id = int(delivery.chat_id)
        if delivery.status_message_id is None:
            message_id = await self.board.create(
                chat_id, defang(text), reply_to=_reply_to(delivery), thread_id=delivery.extra.get("thread_id")
            )
            return str(message_id)
        self.board.update(chat_id, int(delivery.status_message_id), defang(text))
        return delivery.status_message_id

    async def send_result(self, delivery: DeliveryView, result: ResultView) -> str:
        """Post the song as an audio message with its caption and the 🎲/📝/✏️/➕ buttons; return its message id."""
        chat_id, thread_id = int(delivery.chat_id), delivery.extra.get("thread_id")
        async with _chat_action(self.application.bot, chat_id, ChatAction.UPLOAD_VOICE, thread_id):
            try:
                posted = await self._upload(chat_id, thread_id, delivery, result)
            except NetworkError as error:
                if isinstance(error, BadRequest):  # an answer: Telegram refused it, nothing was posted
                    raise
                # A timeout or a cut connection: Telegram may have taken the audio all the same.
                raise PostUncertain(type(error).__name__) from error
        if delivery.status_message_id is not None:  # the status message ends where the song begins
            self.board.update(chat_id, int(delivery.status_message_id), f"✅ #{result.job_id} done")
        return str(posted.message_id)

    async def _upload(self, chat_id: int, thread_id: int | None, delivery: DeliveryView, result: ResultView) -> Message:
        path = await asyncio.to_thread(fit_mp3, Path(result.mp3_path), FileSizeLimit.FILESIZE_UPLOAD)
        data = await asyncio.to_thread(path.read_bytes)  # bytes, so a retried upload sends them again
        track = result.track
        return await self.application.bot.send_audio(
            chat_id,
            audio=data,
            filename=f"songbot-{result.job_id}.mp3",
            title=track.title or f"Song #{result.job_id}",
            performer=PERFORMER,
            duration=round(track.duration_s),
            caption=caption(defang(with_repeat_note(delivery, result.caption))),
            reply_markup=result_keyboard(result.job_id),
            reply_parameters=_reply_parameters(delivery),
            message_thread_id=thread_id,
            write_timeout=UPLOAD_TIMEOUT_S,
            read_timeout=UPLOAD_TIMEOUT_S,
        )

    async def send_description(self, delivery: DeliveryView, described: Described) -> str:
        """Post what /describe heard (several messages for long lyrics), the button under the last one."""
        chat_id, thread_id = int(delivery.chat_id), delivery.extra.get("thread_id")
        parts, keyboard = describe_message(described)
        parts[0] = with_repeat_note(delivery, parts[0])
        posted: Message | None = None
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            posted = await self.application.bot.send_message(
                chat_id,
                part,
                reply_markup=keyboard if last else None,
                reply_parameters=_reply_parameters(delivery) if index == 0 else None,
                message_thread_id=thread_id,
            )
        if delivery.status_message_id is not None:
            self.board.update(chat_id, int(delivery.status_message_id), f"✅ #{described.job_id} done")
        assert posted is not None
        return str(posted.message_id)

    async def send_error(self, delivery: DeliveryView, text: str) -> None:
        """Replace the status with the one sentence (or reply with it when there is no status message)."""
        chat_id = int(delivery.chat_id)
        if delivery.status_message_id is not None:
            try:
                await self.board.edit_now(chat_id, int(delivery.status_message_id), defang(text))
                return
            except BadRequest as exc:  # the user deleted the status message: say it afresh
                log.info("status message gone", extra={"delivery": delivery.id, "error": exc.message})
        await self.application.bot.send_message(
            chat_id,
            defang(text),
            reply_parameters=_reply_parameters(delivery),
            message_thread_id=delivery.extra.get("thread_id"),
        )

    async def send_notice(self, delivery: DeliveryView, text: str) -> None:
        """The sentence in place of the status message (a song posted earlier is a message of its own)."""
        await self.send_error(delivery, text)

    async def send_answer(self, delivery: DeliveryView, answer: Answer) -> None:
        """A trackless job's answer (a song's timed lyrics and its .lrc), replying to the request."""
        answer = replace(answer, text=with_repeat_note(delivery, answer.text))
        bot, thread_id = self.application.bot, delivery.extra.get("thread_id")
        await post_answer(bot, int(delivery.chat_id), answer, _reply_to(delivery), thread_id)

    # ---- internals ------------------------------------------------------------------------------------

    async def _publish_commands(self) -> None:
        bot = self.application.bot
        await bot.set_my_commands(COMMANDS)
        for key in self.settings.admin_ids:
            platform, _, user_id = key.partition(":")
            if platform != "telegram" or not user_id.lstrip("-").isdigit():
                continue
            try:  # admins see /admin in their private chat's menu
                await bot.set_my_commands([*COMMANDS, ADMIN_COMMAND], scope=BotCommandScopeChat(int(user_id)))
            except TelegramError as exc:  # the admin has not opened a chat with the bot yet
                log.info("admin command menu not set", extra={"error": type(exc).__name__})

    async def _start_webhook(self) -> None:
        token = self.application.bot.token
        secret = webhook_secret(token)
        settings = self.settings
        self._webhook = WebhookServer(
            self.application,
            settings.telegram_webhook_url,
            settings.telegram_webhook_listen,
            settings.telegram_webhook_port,
            secret,
        )
        await self._webhook.start()
        await self.application.bot.set_webhook(
            settings.telegram_webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
        )


@contextlib.asynccontextmanager
async def _chat_action(bot: Bot, chat_id: int, action: str, thread_id: int | None) -> AsyncIterator[None]:
    """Show ``action`` ("sending a voice message…") for as long as the block runs.

    Telegram clears a chat action after 5 seconds, so it is sent again every few seconds.
    """
    await bot.send_chat_action(chat_id, action, message_thread_id=thread_id)

    async def keep_showing() -> None:
        while True:
            await asyncio.sleep(CHAT_ACTION_EVERY_S)
            with contextlib.suppress(TelegramError):  # only a courtesy: never fail an upload over it
                await bot.send_chat_action(chat_id, action, message_thread_id=thread_id)

    repeater = asyncio.create_task(keep_showing())
    try:
        yield
    finally:
        repeater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await repeater


def silence_request_logs() -> None:
    """Keep the token and message texts out of the logs.

    httpx logs every request URL at INFO, and Telegram URLs contain the bot token; PTB's DEBUG lines
    carry the base URL (with the token) and every request's parameters (with the users' texts).
    """
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("telegram").setLevel(logging.INFO)


def _build_application(settings: Settings) -> Application:
    assert settings.telegram_token is not None
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        .rate_limiter(AIORateLimiter(max_retries=MAX_RETRIES_429))
        .concurrent_updates(True)  # a slow cover download must not hold up everyone else
    )
    if settings.telegram_webhook_url:
        builder = builder.updater(None)
    return builder.build()


def _install(application: Application, h: Handlers) -> None:
    """Register the handlers, PTB-examples style."""
    application.add_handler(TypeHandler(Update, h.gate), group=-1)
    for name, callback in (
        ("start", h.start),
        ("help", h.help),
        ("song", h.song),
        ("cover", h.cover),
        ("describe", h.describe),
        ("reroll", h.reroll),
        ("repaint", h.repaint),
        ("extend", h.extend),
        ("history", h.history),
        ("queue", h.queue),
        ("cancel", h.cancel),
        ("lyrics", h.lyrics),
        ("styles", h.styles),
        ("admin", h.admin),
    ):
        application.add_handler(CommandHandler(name, callback, filters=NOT_EDITED))
    # "/cover" as the caption of the upload itself works too.
    captioned_cover = filters.CaptionRegex(r"^/cover\b") & COVER_SOURCES & NOT_EDITED
    application.add_handler(MessageHandler(captioned_cover, h.cover))
    captioned_describe = filters.CaptionRegex(r"^/describe\b") & COVER_SOURCES & NOT_EDITED
    application.add_handler(MessageHandler(captioned_describe, h.describe))
    application.add_handler(CallbackQueryHandler(h.button, pattern=CALLBACK_PATTERN))
    # A plain reply may answer the ✏️ question (which part to repaint); other plain private text gets the hint.
    answer = filters.REPLY & filters.TEXT & ~filters.COMMAND & NOT_EDITED
    application.add_handler(MessageHandler(answer, h.answer))
    lost = filters.ChatType.PRIVATE & (filters.TEXT | filters.COMMAND) & NOT_EDITED  # after the commands
    application.add_handler(MessageHandler(lost, h.hint))
    application.add_error_handler(h.on_error)


def _reply_to(delivery: DeliveryView) -> int | None:
    return int(delivery.reply_to_message_id) if delivery.reply_to_message_id else None


def _reply_parameters(delivery: DeliveryView) -> ReplyParameters | None:
    reply_to = _reply_to(delivery)
    return ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
