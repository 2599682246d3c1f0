"""A fake Telegram Bot API server on 127.0.0.1, for running the real python-telegram-bot in tests.

Point PTB at it with ``base_url=api.base_url`` and ``base_file_url=api.file_base_url``. The fake speaks the
wire protocol that PTB speaks (form fields or multipart, the ``{"ok": ..., "result": ...}`` envelope, HTTP
error codes with ``description`` and ``parameters.retry_after``), keeps chats and messages, and refuses what
the real API refuses: an identical edit ("message is not modified"), over-long texts and captions, callback
data over 64 bytes, downloads over 20 MB, unknown methods (404) and a wrong token (401). Tests play the
users (``user_message``, ``press``) and wait on what the bot did (``wait_for``), never on sleeps.

Typical use::

    api = FakeTelegramAPI()
    await api.start()
    ann = FakeUser(101, "Ann")
    api.user_message(ann, "/song calm piano")
    audio = await api.wait_for("sendAudio", chat_id=ann.id)
    await api.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

from aiohttp import ClientSession, web

from tests.fakes.telegram_objects import (
    BOT_USER,
    DOWNLOAD_LIMIT_BYTES,
    MAX_CAPTION_CHARS,
    MAX_TEXT_CHARS,
    TOKEN,
    UPLOAD_LIMIT_BYTES,
    ApiCall,
    ApiError,
    FakeUser,
    Json,
    StoredFile,
    UploadedFile,
    bad_request,
    command_entities,
    group_chat,
    private_chat,
    read_params,
    set_markup,
)

__all__ = ["BOT_USER", "TOKEN", "ApiCall", "FakeTelegramAPI", "FakeUser", "group_chat", "private_chat"]


class FakeTelegramAPI:
    """The fake server: state, the user side for tests, and the aiohttp routes."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[ApiCall] = []
        self.messages: dict[tuple[int, int], Json] = {}
        self.edits: dict[tuple[int, int], list[str]] = {}  # every text a message had, oldest first
        self.answered: dict[str, Json] = {}  # callback query id -> answerCallbackQuery params
        self.commands: list[Json] = []
        self.webhook: Json = {}
        self.files: dict[str, StoredFile] = {}
        self._updates: list[Json] = []
        self._failures: dict[str, list[ApiError]] = {}
        self._ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._tick = asyncio.Event()  # set (and replaced) whenever anything changes
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        self.port = 0

    # ---- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 at an ephemeral port."""
        app = web.Application(client_max_size=UPLOAD_LIMIT_BYTES + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Wake pending long polls and close the server."""
        self._closing.set()
        self._notify()
        if self._pusher:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
        if self._runner:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """PTB's ``base_url`` (the token is appended by PTB)."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def file_base_url(self) -> str:
        """PTB's ``base_file_url``."""
        return f"http://127.0.0.1:{self.port}/file/bot"

    # ---- the user side: what tests do ----------------------------------------------------------------

    def add_file(self, data: bytes, *, declared_size: int | None = None, folder: str = "music") -> Json:
        """Store a file the bot can download; ``declared_size`` fakes a big file without its bytes."""
        n = next(self._ids)
        stored = StoredFile(
            f"file-{n}",
            f"u{n}",
            data,
            len(data) if declared_size is None else declared_size,
            f"{folder}/file_{n}",
        )
        self.files[stored.file_id] = stored
        return {"file_id": stored.file_id, "file_unique_id": stored.unique_id, "file_size": stored.size}

    def audio(
        self,
        data: bytes,
        *,
        mime: str = "audio/mpeg",
        duration: int = 5,
        title: str = "Demo",
        file_name: str = "demo.mp3",
        declared_size: int | None = None,
    ) -> tuple[str, Json]:
        """An ``audio`` attachment for ``user_message``."""
        return "audio", {
            **self.add_file(data, declared_size=declared_size),
            "duration": duration,
            "mime_type": mime,
            "title": title,
            "file_name": file_name,
        }

    def voice(self, data: bytes, *, duration: int = 3, declared_size: int | None = None) -> tuple[str, Json]:
        """A ``voice`` note attachment (OGG/Opus on Telegram)."""
        return "voice", {
            **self.add_file(data, declared_size=declared_size, folder="voice"),
            "duration": duration,
            "mime_type": "audio/ogg",
        }

    def video_note(self, data: bytes, *, duration: int = 3) -> tuple[str, Json]:
        """A round ``video_note`` attachment (MP4 with an audio track)."""
        return "video_note", {
            **self.add_file(data, folder="video_notes"),
            "duration": duration,
            "length": 240,
        }

    def document(self, data: bytes, *, mime: str, file_name: str, declared_size: int | None = None) -> tuple[str, Json]:
        """A ``document`` attachment of any type."""
        return "document", {
            **self.add_file(data, declared_size=declared_size, folder="documents"),
            "mime_type": mime,
            "file_name": file_name,
        }

    def user_message(
        self,
        user: FakeUser,
        text: str | None = None,
        *,
        chat: Json | None = None,
        reply_to: Json | None = None,
        media: tuple[str, Json] | None = None,
        caption: str | None = None,
    ) -> Json:
        """Deliver a message from ``user`` to the bot; a leading ``/command`` gets its entity."""
        chat = chat or private_chat(user)
        message = self._new_message(chat, user.to_dict())
        if text is not None:
            message["text"] = text
            if entities := command_entities(text):
                message["entities"] = entities
        if caption is not None:
            message["caption"] = caption
        if media:
            message[media[0]] = media[1]
        if reply_to is not None:
            message["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
        self._push_update({"message": message})
        return message

    def press(self, user: FakeUser, message: Json, data: str) -> str:
        """Press an inline button with ``data`` under the bot's ``message``; returns the query id."""
        query_id = f"cq-{next(self._ids)}"
        self._push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user.to_dict(),
                    "message": message,
                    "chat_instance": f"ci-{message['chat']['id']}",
                    "data": data,
                }
            }
        )
        return query_id

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        retry_after: int | None = 1,
        status: int = 429,
        description: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail (default: flood control with ``retry_after``)."""
        params = {"retry_after": retry_after} if status == 429 and retry_after is not None else None
        text = description or f"Too Many Requests: retry after {retry_after}"
        self._failures.setdefault(method, []).extend(ApiError(status, text, params) for _ in range(count))

    # ---- observing the bot -----------------------------------------------------------------------------

    def mark(self) -> int:
        """The index of the next call, to wait only for what happens after now."""
        return len(self.calls)

    def calls_of(
        self, method: str, *, chat_id: int | None = None, after: int = 0, ok_only: bool = True
    ) -> list[ApiCall]:
        """Calls of ``method``: answered with success, or with ``ok_only=False`` all received (in flight too)."""
        return [
            c
            for c in self.calls[after:]
            if c.method == method and (chat_id is None or c.chat_id == chat_id) and (c.ok or not ok_only)
        ]

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy and return its value; fail loudly on timeout."""

        async def _wait() -> Any:
            while not (value := predicate()):
                await self._tick.wait()
            return value

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except TimeoutError:
            seen = [(c.method, c.params.get("chat_id"), c.error and c.error.description) for c in self.calls[-15:]]
            raise AssertionError(f"timed out after {timeout}s; last calls: {seen}") from None

    async def wait_for(
        self,
        method: str,
        *,
        chat_id: int | None = None,
        after: int = 0,
        where: Callable[[ApiCall], bool] | None = None,
        timeout: float = 10.0,
        ok_only: bool = True,
    ) -> ApiCall:
        """Wait for the first call of ``method`` (from index ``after``) that matches (see ``calls_of``)."""

        def first() -> ApiCall | None:
            calls = self.calls_of(method, chat_id=chat_id, after=after, ok_only=ok_only)
            return next((c for c in calls if where is None or where(c)), None)

        return await self.wait_until(first, timeout)

    def chat_messages(self, chat_id: int, *, from_bot: bool = True) -> list[Json]:
        """The messages of a chat in order, the bot's only by default."""
        found = [m for (c, _), m in sorted(self.messages.items()) if c == chat_id]
        return [m for m in found if m["from"]["is_bot"] == from_bot]

    def download(self, file_id: str) -> bytes:
        """The bytes behind a ``file_id`` (what the bot uploaded, or what a test added)."""
        return self.files[file_id].data

    # ---- HTTP ------------------------------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").body(), status=401)
        method = request.match_info["method"]
        params, files = await read_params(request)
        call = ApiCall(method, params, files)
        self.calls.append(call)
        self._notify()
        try:
            if queued := self._failures.get(method):
                raise queued.pop(0)
            handler = getattr(self, f"_api_{method}", None)
            if handler is None:
                raise ApiError(404, "Not Found")
            call.result = await handler(params, files)
        except ApiError as exc:
            call.error = exc
        call.answered = True
        self._notify()
        if call.error:
            return web.json_response(call.error.body(), status=call.error.status)
        return web.json_response({"ok": True, "result": call.result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        stored = next((f for f in self.files.values() if f.path == path), None)
        if stored is None:
            return web.Response(status=404)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ---- the Bot API methods ---------------------------------------------------------------------------

    async def _api_getMe(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        return BOT_USER

    async def _api_getUpdates(self, params: Json, files: dict[str, UploadedFile]) -> list[Json]:
        if self.webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 100)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]  # confirmed ones are gone
        timeout_s = float(params.get("timeout") or 0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_updates(), timeout_s)
        return self._updates[:limit]

    async def _wait_updates(self) -> None:
        while not self._updates and not self._closing.is_set():
            await self._tick.wait()

    async def _api_deleteWebhook(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = {}
        return True

    async def _api_setWebhook(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push_to_webhook())
        return True

    async def _api_setMyCommands(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        self.commands = params["commands"]
        return True

    async def _api_sendChatAction(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        self._chat_key(params)
        return True

    async def _api_answerCallbackQuery(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        query_id = params["callback_query_id"]
        if query_id in self.answered:
            raise bad_request("query is too old and response timeout expired or query ID is invalid")
        self.answered[query_id] = params
        return True

    async def _api_sendMessage(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        text = str(params.get("text") or "")
        if not text.strip():
            raise bad_request("message text is empty")
        if len(text) > MAX_TEXT_CHARS:
            raise bad_request("message is too long")
        message = self._bot_message(params, text=text)
        self.edits[(message["chat"]["id"], message["message_id"])] = [text]
        return message

    async def _api_editMessageText(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None or not message["from"]["is_bot"]:
            raise bad_request("message to edit not found")
        text, markup = str(params.get("text") or ""), params.get("reply_markup")
        if not text.strip():
            raise bad_request("message text is empty")
        if text == message.get("text") and markup == message.get("reply_markup"):
            raise bad_request(
                "message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message"
            )
        message.update(text=text, edit_date=int(time.time()))
        set_markup(message, markup)
        self.edits.setdefault(key, []).append(text)
        return message

    async def _api_deleteMessage(self, params: Json, files: dict[str, UploadedFile]) -> bool:
        if self.messages.pop((int(params["chat_id"]), int(params["message_id"])), None) is None:
            raise bad_request("message to delete not found")
        return True

    async def _api_sendAudio(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        caption = params.get("caption")
        if caption is not None and len(caption) > MAX_CAPTION_CHARS:
            raise bad_request("message caption is too long")
        upload = files.get("audio")
        if upload is None and str(params.get("audio")) in self.files:  # re-sent by file_id: no upload
            upload = UploadedFile(None, None, self.files[str(params["audio"])].data)
        if upload is None:
            raise bad_request("there is no audio in the request")
        if not upload.data:
            raise bad_request("file must be non-empty")
        if len(upload.data) > UPLOAD_LIMIT_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        stored = self.add_file(upload.data, folder="music")
        audio = {
            **stored,
            "duration": int(params.get("duration") or 0),
            "mime_type": "audio/mpeg",
            "file_name": upload.filename or "audio.mp3",
        }
        audio.update({k: params[k] for k in ("title", "performer") if params.get(k) is not None})
        return self._bot_message(params, audio=audio, **({"caption": caption} if caption is not None else {}))

    async def _api_sendDocument(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        caption = params.get("caption")
        if caption is not None and len(caption) > MAX_CAPTION_CHARS:
            raise bad_request("message caption is too long")
        upload = files.get("document")
        if upload is None:
            raise bad_request("there is no document in the request")
        if not upload.data:
            raise bad_request("file must be non-empty")
        if len(upload.data) > UPLOAD_LIMIT_BYTES:
            raise ApiError(413, "Request Entity Too Large")
        document = {**self.add_file(upload.data, folder="documents"), "file_name": upload.filename or "document"}
        return self._bot_message(params, document=document, **({"caption": caption} if caption is not None else {}))

    async def _api_getFile(self, params: Json, files: dict[str, UploadedFile]) -> Json:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > DOWNLOAD_LIMIT_BYTES:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    # ---- internals -------------------------------------------------------------------------------------

    def _chat_key(self, params: Json) -> int:
        if params.get("chat_id") in (None, ""):
            raise bad_request("chat_id is empty")
        return int(params["chat_id"])

    def _bot_message(self, params: Json, **content: Any) -> Json:
        chat_id = self._chat_key(params)
        chat = {"id": chat_id, "type": "private"} if chat_id > 0 else {"id": chat_id, "type": "group", "title": "Band"}
        message = self._new_message(chat, BOT_USER, **content)
        set_markup(message, params.get("reply_markup"))
        reply = params.get("reply_parameters") or {}
        if (original := self.messages.get((chat_id, int(reply.get("message_id") or 0)))) is not None:
            message["reply_to_message"] = {k: v for k, v in original.items() if k != "reply_to_message"}
        return message

    def _new_message(self, chat: Json, sender: Json, **content: Any) -> Json:
        counter = self._message_ids.setdefault(chat["id"], itertools.count(1))
        message = {
            "message_id": next(counter),
            "date": int(time.time()),
            "chat": chat,
            "from": sender,
            **content,
        }
        self.messages[(chat["id"], message["message_id"])] = message
        return message

    def _push_update(self, payload: Json) -> None:
        self._updates.append({"update_id": next(self._ids), **payload})
        self._notify()

    def _notify(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    async def _push_to_webhook(self) -> None:
        """Webhook mode: POST each pending update to the bot's URL, as Telegram does, until it is taken."""
        async with ClientSession() as session:
            while not self._closing.is_set() and self.webhook.get("url"):
                await self._wait_updates()
                if not self._updates or not self.webhook.get("url"):
                    continue
                update = self._updates[0]
                headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook.get("secret_token") or ""}
                try:
                    async with session.post(self.webhook["url"], json=update, headers=headers) as resp:
                        if resp.status == 200:
                            self._updates.pop(0)
                            continue
                except OSError:
                    pass
                await asyncio.sleep(0.2)  # the bot's server is not up yet: retry, as Telegram does
