"""The wire objects of the fake Telegram Bot API: users, chats, errors, recorded calls, request decoding.

Kept apart from the server (``telegram_api.py``) so that file reads as the list of Bot API methods.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "4242:TEST-token-never-logged"
BOT_USER = {
    "id": 4242,
    "is_bot": True,
    "first_name": "SongBot",
    "username": "songbot_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
DOWNLOAD_LIMIT_BYTES = 20 * 1024 * 1024  # the cloud Bot API lets bots download at most 20 MB
UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
MAX_TEXT_CHARS, MAX_CAPTION_CHARS, MAX_CALLBACK_DATA_BYTES = 4096, 1024, 64
# Parameters that PTB sends as raw strings; everything else is JSON-encoded (see RequestParameter.json_value).
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "title",
        "performer",
        "parse_mode",
        "action",
        "callback_query_id",
        "file_id",
        "url",
        "secret_token",
        "chat_id",
        "business_connection_id",
    }
)
Json = dict[str, Any]


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status, description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: Json | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def body(self) -> Json:
        """The JSON envelope Telegram sends for this error."""
        body: Json = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user that tests play."""

    id: int
    first_name: str = "Ann"
    username: str | None = None
    is_bot: bool = False

    def to_dict(self) -> Json:
        """The ``User`` object of the Bot API."""
        user: Json = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            user["username"] = self.username
        return user


def private_chat(user: FakeUser) -> Json:
    """The private chat between ``user`` and the bot (its id is the user's id, as on Telegram)."""
    return {"id": user.id, "type": "private", "first_name": user.first_name}


def group_chat(chat_id: int, title: str = "Band") -> Json:
    """A group chat (group ids are negative, as on Telegram)."""
    return {"id": chat_id, "type": "group", "title": title}


@dataclass
class ApiCall:
    """One request the bot made, recorded on arrival; ``answered`` once the fake replied."""

    method: str
    params: Json
    files: dict[str, UploadedFile] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)
    result: Any = None
    error: ApiError | None = None
    answered: bool = False

    @property
    def ok(self) -> bool:
        """Answered with success."""
        return self.answered and self.error is None

    @property
    def chat_id(self) -> int | None:
        """The target chat as an int, when the method has one."""
        value = self.params.get("chat_id")
        return int(value) if value is not None else None


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class StoredFile:
    """A file the fake serves through getFile and the file route."""

    file_id: str
    unique_id: str
    data: bytes
    size: int
    path: str


def command_entities(text: str) -> list[Json]:
    if not text.startswith("/"):
        return []
    command = text.split(maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": len(command.encode("utf-16-le")) // 2}]


def set_markup(message: Json, markup: Any) -> None:
    # A sent message keeps only an inline keyboard: ForceReply and reply keyboards act on the client.
    if markup is None or "inline_keyboard" not in markup:
        message.pop("reply_markup", None)
        return
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if len(button.get("callback_data", "").encode()) > MAX_CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
    message["reply_markup"] = markup


async def read_params(request: web.Request) -> tuple[Json, dict[str, UploadedFile]]:
    """Decode a PTB request: form fields or multipart parts, JSON-encoded except plain strings."""
    params: Json = {}
    files: dict[str, UploadedFile] = {}
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if part.filename is not None:  # type: ignore[union-attr]
                files[part.name] = UploadedFile(
                    part.filename,
                    part.headers.get("Content-Type"),  # type: ignore
                    bytes(await part.read()),
                )  # type: ignore[union-attr]
            else:
                params[part.name] = _decode(part.name, await part.text())  # type: ignore[union-attr]
    elif request.content_type == "application/json":
        params = await request.json()
    elif request.can_read_body:
        params = {name: _decode(name, str(value)) for name, value in (await request.post()).items()}
    params.update({k: _decode(k, v) for k, v in request.query.items()})
    return params, files


def _decode(name: str, raw: str) -> Any:
    if name in _STRING_FIELDS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw
