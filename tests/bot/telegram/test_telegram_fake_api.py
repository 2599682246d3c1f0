"""The fake Bot API itself, driven by the real python-telegram-bot (no songbot code involved)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Conflict, EndPointNotFound, InvalidToken, RetryAfter
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fakes.telegram_api import BOT_USER, FakeTelegramAPI, FakeUser, group_chat

ANN = FakeUser(101, "Ann")


@pytest.fixture
async def bot(api: FakeTelegramAPI) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url, base_file_url=api.file_base_url) as client:
        yield client


async def _start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply to /start."""
    assert update.effective_message is not None
    await update.effective_message.reply_text(f"hi {' '.join(context.args or [])}".strip())


async def _button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a button press."""
    assert update.callback_query is not None
    await update.callback_query.answer(f"pressed {update.callback_query.data}")


def _application(api: FakeTelegramAPI) -> Application:
    app = ApplicationBuilder().token(api.token).base_url(api.base_url).base_file_url(api.file_base_url).build()
    app.add_handler(CommandHandler("start", _start))
    app.add_handler(CallbackQueryHandler(_button, pattern=r"^rr:"))
    return app


@pytest.fixture
async def polling_app(api: FakeTelegramAPI) -> AsyncIterator[Application]:
    app = _application(api)
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    yield app
    await app.updater.stop()
    await app.stop()
    await app.shutdown()


async def test_application_polls_receives_a_message_and_replies(api: FakeTelegramAPI, polling_app: Application) -> None:
    api.user_message(ANN, "/start there")
    reply = await api.wait_for("sendMessage", chat_id=ANN.id)
    assert reply.result["text"] == "hi there"
    assert [m["text"] for m in api.chat_messages(ANN.id)] == ["hi there"]
    assert api.calls_of("getMe") and api.calls_of("deleteWebhook")


async def test_group_commands_for_other_bots_are_ignored(api: FakeTelegramAPI, polling_app: Application) -> None:
    band = group_chat(-500)
    api.user_message(ANN, "/start@other_bot one", chat=band)
    sent = api.user_message(ANN, f"/start@{BOT_USER['username']} two", chat=band)
    reply = await api.wait_for("sendMessage", chat_id=-500)
    await api.wait_for("getUpdates", after=api.mark())  # the queue is drained: nothing else is coming
    assert reply.result["text"] == "hi two"
    assert reply.result["reply_to_message"]["message_id"] == sent["message_id"]  # PTB quotes in groups
    assert len(api.calls_of("sendMessage")) == 1


async def test_button_press_is_answered(api: FakeTelegramAPI, polling_app: Application) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("🎲 Re-roll", callback_data="rr:7")]])
    message = await polling_app.bot.send_message(ANN.id, "a song", reply_markup=keyboard)
    query_id = api.press(ANN, api.messages[(ANN.id, message.message_id)], "rr:7")
    await api.wait_for("answerCallbackQuery")
    assert api.answered[query_id]["text"] == "pressed rr:7"


async def test_identical_edit_is_refused_like_telegram(api: FakeTelegramAPI, bot: Bot) -> None:
    message = await bot.send_message(ANN.id, "queued")
    await bot.edit_message_text("generating 10%", chat_id=ANN.id, message_id=message.message_id)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("generating 10%", chat_id=ANN.id, message_id=message.message_id)
    assert api.edits[(ANN.id, message.message_id)] == ["queued", "generating 10%"]


async def test_flood_control_injection(api: FakeTelegramAPI, bot: Bot) -> None:
    api.fail_next("sendMessage", 1, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ANN.id, "one")
    assert "Retry in 3 seconds" in str(caught.value)
    assert (await bot.send_message(ANN.id, "one")).text == "one"


async def test_send_audio_multipart_keeps_bytes_and_fields(api: FakeTelegramAPI, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("📝 Lyrics", callback_data="ly:3")]])
    message = await bot.send_audio(
        ANN.id,
        b"ID3fake-mp3",
        title="Calm",
        performer="SongBot",
        duration=10,
        caption="Calm · #3",
        filename="calm.mp3",
        reply_markup=keyboard,
    )
    call = api.calls_of("sendAudio")[0]
    assert call.files["audio"].data == b"ID3fake-mp3" and call.files["audio"].filename == "calm.mp3"
    assert (call.params["title"], call.params["performer"], call.params["duration"]) == (
        "Calm",
        "SongBot",
        10,
    )
    assert message.audio is not None and message.caption == "Calm · #3"
    assert message.reply_markup is not None
    assert message.reply_markup.inline_keyboard[0][0].callback_data == "ly:3"
    assert api.download(message.audio.file_id) == b"ID3fake-mp3"


async def test_get_file_and_download(api: FakeTelegramAPI, bot: Bot) -> None:
    _, audio = api.audio(b"\x00\x01some-audio")
    tg_file = await bot.get_file(audio["file_id"])
    assert bytes(await tg_file.download_as_bytearray()) == b"\x00\x01some-audio"


async def test_download_over_twenty_megabytes_is_refused(api: FakeTelegramAPI, bot: Bot) -> None:
    _, doc = api.document(b"x", mime="audio/mpeg", file_name="big.mp3", declared_size=21 * 1024 * 1024)
    with pytest.raises(BadRequest, match="File is too big"):
        await bot.get_file(doc["file_id"])


async def test_wrong_token_and_unknown_method_fail_loudly(api: FakeTelegramAPI) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("1:wrong", base_url=api.base_url):
            pass
    async with Bot(api.token, base_url=api.base_url) as client:
        with pytest.raises(EndPointNotFound):
            await client.do_api_request("makeCoffee", api_kwargs={"chat_id": ANN.id})


async def test_webhook_mode_posts_updates_with_the_secret(api: FakeTelegramAPI, bot: Bot) -> None:
    received: asyncio.Queue[tuple[str | None, dict]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await received.put((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/tg", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/tg", secret_token="s3cret")
        with pytest.raises(Conflict):
            await bot.get_updates(timeout=0)
        sent = api.user_message(ANN, "/start hook")
        secret, update = await asyncio.wait_for(received.get(), 5)
        assert secret == "s3cret" and update["message"] == sent
    finally:
        await runner.cleanup()
