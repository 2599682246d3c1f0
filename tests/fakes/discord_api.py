"""A fake Discord on 127.0.0.1 for tests: REST v10, the gateway websocket and a CDN (tests only).

The real discord.py client runs against it unmodified, redirected by its two documented hooks::

    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        record = await fake.send_slash("song", [option("description", "a sea shanty")])
        await fake.wait_for(lambda: record.edits)

It records every request (``calls``), enforces the interaction rules that matter to a bot (an initial
response within 3 s, at most one, a 15-minute token, ``Bot`` auth on REST routes), answers unknown routes
with a 404 that tests can assert on (``unhandled``), and injects 429s on demand (``rate_limit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
import traceback
from collections.abc import Callable
from typing import Any, Self, TypeVar

from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.discord_gateway import GatewayHub
from tests.fakes.discord_http import (
    Call,
    RateLimitRule,
    UploadedFile,
    error_response,
    json_response,
    read_body,
    too_many_requests,
)
from tests.fakes.discord_interactions import InteractionRecord, InteractionRoutes

Json = dict[str, Any]
T = TypeVar("T")

BOT_TOKEN = "fake.bot.token"
# How long Discord remembers a message nonce for `enforce_nonce` ("the past few minutes").
NONCE_WINDOW_S = 300.0
API_PREFIX = "/api/v10"


class FakeDiscord(InteractionRoutes):
    """A loopback Discord with one application, one guild and one text channel.

    Args:
        token: The bot token the client must log in with.
        ack_deadline_s: How late an initial interaction response may come (Discord: 3 s).
        attachment_size_limit: The ``attachment_size_limit`` every interaction carries.
    """

    def __init__(
        self,
        token: str = BOT_TOKEN,
        *,
        ack_deadline_s: float = 3.0,
        attachment_size_limit: int = p.DEFAULT_ATTACHMENT_LIMIT,
    ) -> None:
        self.token = token
        self.ack_deadline_s = ack_deadline_s
        self.attachment_size_limit = attachment_size_limit
        self.ids = p.Snowflakes()
        self.app_id = self.ids.next()
        self.owner = p.user(self.ids.next(), "owner")
        self.bot = p.bot_user(self.app_id, "songbot")
        self.guild_id = self.ids.next()
        self.channel = p.text_channel(self.ids.next(), self.guild_id)
        self.calls: list[Call] = []
        self.last_call: Call | None = None
        self.unhandled: list[Call] = []
        self.errors: list[str] = []
        self.commands: dict[str | None, list[Json]] = {}
        self.channel_messages: list[Json] = []
        # (author id, nonce) → (when, message id), for `enforce_nonce`.
        self.nonces: dict[tuple[str, str], tuple[float, str]] = {}
        self.interactions: dict[str, InteractionRecord] = {}
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self._rules: list[RateLimitRule] = []
        self._changed = asyncio.Condition()
        self.gateway = GatewayHub(token, self._ready, self._guilds, self.ids.next)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ----------------------------------------------------------------- lifecycle
    async def start(self) -> Self:
        """Bind to 127.0.0.1 on an ephemeral port and start serving."""
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        """Close the gateway sockets and the server."""
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be set to."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be set to."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------- test helpers
    def member(self, name: str, *, permissions: int = 0) -> Json:
        """A new guild member (as interactions carry it) with the given permission bits."""
        return p.member(p.user(self.ids.next(), name), permissions=permissions)

    def add_cdn_file(self, filename: str, data: bytes, content_type: str | None, *, size: int | None = None) -> Json:
        """Serve ``data`` from the CDN route; return an attachment object pointing at it.

        ``size`` overrides the declared size (to test a client that trusts it before downloading).
        """
        attachment_id = self.ids.next()
        path = f"/cdn/attachments/{self.channel['id']}/{attachment_id}/{filename}"
        self.cdn[path] = (data, content_type or "application/octet-stream")
        declared = len(data) if size is None else size
        return p.attachment(attachment_id, filename, declared, self.base_url + path, content_type)

    def user_message(self, author: Json, content: str = "", attachments: list[Json] | None = None) -> Json:
        """A message some user posted in the channel (a target for message context menus)."""
        message = p.message(
            self.ids.next(),
            self.channel["id"],
            author["user"],
            content=content,
            attachments=attachments,
            guild_id=self.guild_id,
        )
        self.channel_messages.append(message)
        return message

    def rate_limit(
        self,
        method: str,
        path_regex: str,
        *,
        times: int = 1,
        retry_after_s: float = 0.2,
        is_global: bool = False,
        multipart_only: bool = False,
    ) -> RateLimitRule:
        """Answer the next ``times`` requests matching ``method`` and ``path_regex`` with a 429."""
        rule = RateLimitRule(method, re.compile(path_regex), times, retry_after_s, is_global, multipart_only)
        self._rules.append(rule)
        return rule

    async def dispatch(self, event: str, data: Json) -> None:
        """Push a gateway event to every connected client; fail if nobody is connected."""
        if await self.gateway.dispatch(event, data) == 0:
            raise AssertionError(f"no identified gateway session to receive {event}")

    async def wait_for(self, predicate: Callable[[], T], timeout_s: float = 15.0) -> T:
        """Wait until ``predicate()`` is truthy; return its value.

        It is checked after every request and every 50 ms (for state that changes elsewhere: the
        gateway, the bot's tasks).
        """

        async def poll() -> T:
            async with self._changed:
                while not (value := predicate()):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.05)
                return value

        return await asyncio.wait_for(poll(), timeout_s)

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        """The recorded calls matching ``method`` and ``path_regex``."""
        return [c for c in self.calls if c.method == method and re.search(path_regex, c.path)]

    # ------------------------------------------------------------------ plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Inject 429s, record each request, wake up waiters."""
        rule = next((r for r in self._rules if r.matches(request)), None)
        if rule is not None:
            rule.hits += 1
            await request.read()
            self._record(request, None, [], 429)
            return too_many_requests(rule)
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            self.errors.append(traceback.format_exc())  # a bug in the fake: the test fails at teardown
            raise
        finally:
            async with self._changed:
                self._changed.notify_all()
        return response

    def _record(self, request: web.Request, body: Any, files: list[UploadedFile], status: int) -> Call:
        call = Call(request.method, request.path, dict(request.query), body, files, status)
        self.calls.append(call)
        return call

    async def _body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        body, files = await read_body(request)
        self.last_call = self._record(request, body, files, 200)
        return body, files

    def too_large(self, files: list[UploadedFile]) -> web.Response | None:
        """Discord's answer to a file over the upload limit (the limit applies per file)."""
        if any(len(f.data) > self.attachment_size_limit for f in files):
            return error_response(413, 40005, "Request entity too large")
        return None

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        api = API_PREFIX
        router.add_get("/gateway", self.gateway.handle)
        router.add_get(api + "/gateway", self._get_gateway)
        router.add_get(api + "/gateway/bot", self._get_gateway)
        router.add_get(api + "/users/@me", self._authed(lambda r, b: self.bot))
        router.add_get(api + "/oauth2/applications/@me", self._authed(lambda r, b: self._application()))
        router.add_get(api + "/applications/@me", self._authed(lambda r, b: self._application()))
        for path in (
            api + "/applications/{app}/commands",
            api + "/applications/{app}/guilds/{guild}/commands",
        ):
            router.add_put(path, self._authed(self._put_commands))
            router.add_get(path, self._authed(lambda r, b: self.commands.get(r.match_info.get("guild"), [])))
        router.add_post(api + "/channels/{channel}/messages", self._post_channel_message)
        message = api + "/channels/{channel}/messages/{message}"
        router.add_get(message, self._authed(self._get_channel_message))
        router.add_patch(message, self._edit_channel_message)
        router.add_delete(message, self._delete_channel_message)
        router.add_get("/cdn/{path:.*}", self._cdn)
        self.add_interaction_routes(router, api)
        router.add_route("*", "/{tail:.*}", self._unhandled)

    def _authed(self, build: Callable[[web.Request, Any], Any]) -> Callable[[web.Request], Any]:
        """Wrap a JSON handler: check ``Bot`` auth, record the body, answer with ``build``'s result."""

        async def handler(request: web.Request) -> web.Response:
            body, _ = await self._body(request)
            if not self._authorized(request):
                return error_response(401, 0, "401: Unauthorized")
            return json_response(build(request, body))

        return handler

    async def _unhandled(self, request: web.Request) -> web.Response:
        body, files = await read_body(request)
        self.unhandled.append(self._record(request, body, files, 404))
        return error_response(404, 0, "404: Not Found")

    # ------------------------------------------------------------------- routes
    async def _get_gateway(self, request: web.Request) -> web.Response:
        self._record(request, None, [], 200)
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    def _application(self) -> Json:
        return {
            "id": self.app_id,
            "name": "songbot",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner,
            "verify_key": secrets.token_hex(32),
            "flags": 0,
            "team": None,
            "bot": self.bot,
        }

    def _ready(self, session_id: str) -> Json:
        return {
            "v": 10,
            "user": self.bot,
            "guilds": [{"id": self.guild_id, "unavailable": True}],
            "session_id": session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.app_id, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }

    def _guilds(self) -> list[Json]:
        return [p.guild(self.guild_id, "songbot test", self.owner["id"], [self.channel], self.bot)]

    def _put_commands(self, request: web.Request, body: list[Json]) -> list[Json]:
        guild_id = request.match_info.get("guild")
        registered = [self._registered_command(c, guild_id) for c in body]
        self.commands[guild_id] = registered
        return registered

    def _registered_command(self, command: Json, guild_id: str | None) -> Json:
        """Echo a command as Discord stores it (discord.py's ``AppCommand`` needs these keys)."""
        stored = {"id": self.ids.next(), "application_id": self.app_id, "version": self.ids.next()}
        stored |= {"type": 1, "description": "", "options": [], "dm_permission": True} | command
        if stored.get("default_member_permissions") is not None:  # Discord returns the bit set as a string
            stored["default_member_permissions"] = str(stored["default_member_permissions"])
        if guild_id is not None:
            stored["guild_id"] = guild_id
        return stored

    async def _post_channel_message(self, request: web.Request) -> web.Response:
        body, files = await self._body(request)
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        if refusal := self.too_large(files):
            return refusal
        body = body or {}
        if earlier := self._same_nonce(body):
            return earlier
        message = self.build_message(body, files, request.match_info["channel"])
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
            self.nonces[(message["author"]["id"], str(body["nonce"]))] = (self.now(), message["id"])
        self.channel_messages.append(message)
        return json_response(message)

    def _same_nonce(self, body: Json) -> web.Response | None:
        """Discord's `enforce_nonce`: a repeat by the same author within a few minutes gets the first message.

        One that was deleted since answers 404, as Discord does (discord.py raises NotFound).
        """
        if not body.get("enforce_nonce") or body.get("nonce") is None:
            return None
        seen = self.nonces.get((self.bot["id"], str(body["nonce"])))
        if seen is None or self.now() - seen[0] > NONCE_WINDOW_S:
            return None
        found = [m for m in self.channel_messages if m["id"] == seen[1]]
        return json_response(found[0]) if found else error_response(404, 10008, "Unknown Message")

    async def _edit_channel_message(self, request: web.Request) -> web.Response:
        body, files = await self._body(request)
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        if refusal := self.too_large(files):
            return refusal
        for index, message in enumerate(self.channel_messages):
            if message["id"] == request.match_info["message"] and message["author"]["id"] == self.bot["id"]:
                edited = self.build_message(body or {}, files, message["channel_id"], previous=message)
                self.channel_messages[index] = edited
                return json_response(edited)
        return error_response(404, 10008, "Unknown Message")

    async def _delete_channel_message(self, request: web.Request) -> web.Response:
        self._record(request, None, [], 204)
        if not self._authorized(request):
            return error_response(401, 0, "401: Unauthorized")
        wanted = request.match_info["message"]
        kept = [m for m in self.channel_messages if m["id"] != wanted]
        if len(kept) == len(self.channel_messages):
            return error_response(404, 10008, "Unknown Message")
        self.channel_messages = kept
        return web.Response(status=204)

    def _get_channel_message(self, request: web.Request, body: Any) -> Json:
        wanted = request.match_info["message"]
        found = [m for m in self.channel_messages if m["id"] == wanted]
        if not found:
            raise web.HTTPNotFound(
                text='{"code": 10008, "message": "Unknown Message"}', content_type="application/json"
            )
        return found[0]

    async def _cdn(self, request: web.Request) -> web.Response:
        self._record(request, None, [], 200)
        entry = self.cdn.get(request.path)
        if entry is None:
            return web.Response(status=404, text="not found")
        data, content_type = entry
        return web.Response(body=data, headers={"Content-Type": content_type})

    # ------------------------------------------------------------ message model
    def build_message(
        self,
        body: Json,
        files: list[UploadedFile],
        channel_id: str,
        *,
        interaction_id: str | None = None,
        previous: Json | None = None,
    ) -> Json:
        """Create (or update ``previous``) a bot message from a create/edit request body."""
        message = (
            dict(previous)
            if previous is not None
            else p.message(
                self.ids.next(),
                channel_id,
                self.bot,
                guild_id=self.guild_id,
                interaction_id=interaction_id,
            )
        )
        for key in ("content", "components", "embeds", "allowed_mentions"):
            if key in body and body[key] is not None:
                message[key] = body[key]
        if "flags" in body and body["flags"] is not None:
            message["flags"] = int(body["flags"])
        if "attachments" in body or files:
            message["attachments"] = self._attachments(body.get("attachments"), files, message)
        if previous is not None:
            message["edited_timestamp"] = p.iso_now()
        return message

    def _attachments(self, declared: list[Json] | None, files: list[UploadedFile], message: Json) -> list[Json]:
        """Keep the existing attachments the request names and store its new files on the CDN."""
        existing = {a["id"]: a for a in message.get("attachments", [])}
        kept = [existing[str(a["id"])] for a in declared or [] if str(a.get("id")) in existing]
        new = [self.add_cdn_file(f.filename, f.data, f.content_type) for f in files]
        return kept + new

    def now(self) -> float:
        """The fake's clock (monotonic seconds)."""
        return time.monotonic()
