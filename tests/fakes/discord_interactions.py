"""Interactions in the fake Discord: dispatching them and the routes that answer them (tests only).

Enforces what Discord enforces and a bot can get wrong: the initial response within ``ack_deadline_s``
(3 s) or ``10062 Unknown interaction``; exactly one initial response (``40060``); follow-ups and
``@original`` edits only after it; an expired token (15 min) refused with ``50027 Invalid Webhook Token``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes import discord_payloads as p
from tests.fakes.discord_http import Call, UploadedFile, error_response, json_response

if TYPE_CHECKING:
    from tests.fakes.discord_api import FakeDiscord

Json = dict[str, Any]

# Interaction callback types (discord-api-docs "Interaction Callback Type").
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL = 4, 5, 6, 7, 9
AUTOCOMPLETE_RESULT = 8
EPHEMERAL, LOADING = 1 << 6, 1 << 7


@dataclass
class InteractionRecord:
    """What happened to one dispatched interaction."""

    id: str
    token: str
    payload: Json
    dispatched_at: float = field(default_factory=time.monotonic)
    ack: Call | None = None
    ack_type: int | None = None
    ack_late: bool = False
    expired: bool = False
    original: Json | None = None
    modal: Json | None = None
    choices: list[Json] | None = None  # an autocomplete's answer
    edits: list[Call] = field(default_factory=list)
    followups: list[Json] = field(default_factory=list)

    @property
    def ack_delay_s(self) -> float | None:
        """Seconds between the dispatch and the initial response."""
        return None if self.ack is None else self.ack.at - self.dispatched_at

    @property
    def ephemeral(self) -> bool:
        """True when the initial response (message or defer) was ephemeral."""
        return self.original is not None and bool(self.original["flags"] & EPHEMERAL)

    def texts(self) -> list[str]:
        """Every text the user saw: the original response's states and the follow-ups, in order."""
        seen = [c.body.get("content") for c in self.edits if c.body and c.body.get("content")]
        first = (self.ack.body or {}).get("data") or {} if self.ack is not None else {}
        head = [first["content"]] if first.get("content") else []
        return head + seen + [m["content"] for m in self.followups if m.get("content")]


class InteractionRoutes:
    """Mixin for ``FakeDiscord``: interaction dispatch helpers and the callback/webhook routes."""

    def add_interaction_routes(self: FakeDiscord, router: web.UrlDispatcher, api: str) -> None:
        """Register the interaction callback and the interaction-webhook routes."""
        router.add_post(api + "/interactions/{id}/{token}/callback", self._callback)
        original = api + "/webhooks/{app}/{token}/messages/@original"
        router.add_get(original, self._get_original)
        router.add_patch(original, self._edit_original)
        router.add_delete(original, self._delete_original)
        router.add_post(api + "/webhooks/{app}/{token}", self._followup)
        router.add_patch(api + "/webhooks/{app}/{token}/messages/{message}", self._edit_followup)

    # -------------------------------------------------------------- dispatching
    async def send_interaction(
        self: FakeDiscord, kind: int, data: Json, invoker: Json, message: Json | None = None
    ) -> InteractionRecord:
        """Dispatch an INTERACTION_CREATE over the gateway and start tracking it."""
        record = InteractionRecord(id=self.ids.next(), token=secrets.token_urlsafe(24), payload={})
        record.payload = p.interaction(
            interaction_id=record.id,
            application_id=self.app_id,
            kind=kind,
            token=record.token,
            guild_id=self.guild_id,
            channel=self.channel,
            invoker=invoker,
            data=data,
            attachment_size_limit=self.attachment_size_limit,
            message_payload=message,
        )
        self.interactions[record.token] = record
        record.dispatched_at = time.monotonic()
        await self.dispatch("INTERACTION_CREATE", record.payload)
        return record

    def _command(self: FakeDiscord, name: str, kind: int = 1) -> Json:
        """The registered command ``name`` (global or guild), as the invocation references it."""
        for guild_id in (self.guild_id, None):
            for command in self.commands.get(guild_id, []):
                if command["name"] == name and command.get("type", 1) == kind:
                    return command
        raise AssertionError(f"command {name!r} (type {kind}) was never synced")

    async def send_slash(
        self: FakeDiscord,
        name: str,
        options: list[Json],
        invoker: Json,
        attachments: list[Json] = (),  # type: ignore[assignment]
    ) -> InteractionRecord:
        """Invoke a synced slash command; ``attachments`` become ``resolved.attachments``."""
        command = self._command(name)
        data: Json = {"id": command["id"], "name": name, "type": 1, "options": options}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        if attachments:
            data["resolved"] = {"attachments": {a["id"]: a for a in attachments}}
        return await self.send_interaction(p.APPLICATION_COMMAND, data, invoker)

    async def send_autocomplete(
        self: FakeDiscord, name: str, options: list[Json], focused: str, invoker: Json
    ) -> InteractionRecord:
        """Ask for autocomplete choices while ``focused`` is typed (its value so far is in ``options``)."""
        command = self._command(name)
        marked = [{**option, "focused": True} if option["name"] == focused else option for option in options]
        data: Json = {"id": command["id"], "name": name, "type": 1, "options": marked}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self.send_interaction(p.AUTOCOMPLETE, data, invoker)

    async def send_message_command(self: FakeDiscord, name: str, target: Json, invoker: Json) -> InteractionRecord:
        """Invoke a message context menu command on ``target``."""
        command = self._command(name, kind=3)
        data: Json = {
            "id": command["id"],
            "name": name,
            "type": 3,
            "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return await self.send_interaction(p.APPLICATION_COMMAND, data, invoker)

    async def click(self: FakeDiscord, custom_id: str, message: Json, invoker: Json) -> InteractionRecord:
        """Press the button ``custom_id`` on ``message`` (which must carry that button, as on Discord)."""
        custom_ids = {c.get("custom_id") for row in message.get("components", []) for c in row.get("components", [])}
        if custom_id not in custom_ids:
            raise AssertionError(f"message {message['id']} has no component {custom_id!r}")
        data = {"custom_id": custom_id, "component_type": 2}
        return await self.send_interaction(p.MESSAGE_COMPONENT, data, invoker, message=message)

    async def submit_modal(
        self: FakeDiscord, custom_id: str, fields: dict[str, str], invoker: Json
    ) -> InteractionRecord:
        """Submit a modal with text inputs ``{custom_id: value}``."""
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]} for k, v in fields.items()]
        return await self.send_interaction(p.MODAL_SUBMIT, {"custom_id": custom_id, "components": rows}, invoker)

    def expire(self: FakeDiscord, record: InteractionRecord) -> None:
        """Let ``record``'s token run out (as after 15 minutes)."""
        record.expired = True

    # ------------------------------------------------------------------ routes
    async def _callback(self: FakeDiscord, request: web.Request) -> web.Response:
        body, files = await self._body(request)
        record = self.interactions.get(request.match_info["token"])
        if record is None or record.id != request.match_info["id"]:
            return error_response(404, 10062, "Unknown interaction")
        if record.ack is not None:
            return error_response(400, 40060, "Interaction has already been acknowledged.")
        if time.monotonic() - record.dispatched_at > self.ack_deadline_s:
            record.ack_late = True
            return error_response(404, 10062, "Unknown interaction")
        if refusal := self.too_large(files):
            return refusal
        record.ack, record.ack_type = self.last_call, int(body["type"])
        return json_response(self._acknowledge(record, body.get("data") or {}, files))

    def _acknowledge(self: FakeDiscord, record: InteractionRecord, data: Json, files: list[UploadedFile]) -> Json:
        kind, channel_id = record.ack_type, self.channel["id"]
        component_message = record.payload.get("message")
        if kind == CHANNEL_MESSAGE:
            record.original = self.build_message(data, files, channel_id, interaction_id=record.id)
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            record.original = self.build_message({"flags": flags}, [], channel_id, interaction_id=record.id)
        elif kind == UPDATE_MESSAGE:
            record.original = self.build_message(data, files, channel_id, previous=component_message)
        elif kind == DEFERRED_UPDATE:
            record.original = component_message
        elif kind == MODAL:
            record.modal = data
        elif kind == AUTOCOMPLETE_RESULT:
            record.choices = list(data.get("choices") or [])
        answer: Json = {
            "interaction": {
                "id": record.id,
                "type": record.payload["type"],
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": record.ephemeral,
            }
        }
        if record.original is not None:
            answer["interaction"]["response_message_id"] = record.original["id"]
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, UPDATE_MESSAGE):
            answer["resource"] = {"type": kind, "message": record.original}
        return answer

    def _webhook_record(self: FakeDiscord, request: web.Request) -> InteractionRecord | web.Response:
        """The interaction behind a webhook URL, or the error Discord would answer with."""
        record = self.interactions.get(request.match_info["token"])
        if record is None or request.match_info["app"] != self.app_id:
            return error_response(404, 10015, "Unknown Webhook")
        if record.expired:
            return error_response(401, 50027, "Invalid Webhook Token")
        if record.ack is None:
            return error_response(404, 10015, "Unknown Webhook")
        return record

    async def _get_original(self: FakeDiscord, request: web.Request) -> web.Response:
        self._record(request, None, [], 200)
        record = self._webhook_record(request)
        if isinstance(record, web.Response):
            return record
        if record.original is None:
            return error_response(404, 10008, "Unknown Message")
        return json_response(record.original)

    async def _edit_original(self: FakeDiscord, request: web.Request) -> web.Response:
        body, files = await self._body(request)
        record = self._webhook_record(request)
        if isinstance(record, web.Response):
            return record
        if refusal := self.too_large(files):
            return refusal
        if record.original is None:
            return error_response(404, 10008, "Unknown Message")
        record.edits.append(self.last_call)  # type: ignore[arg-type]
        edited = self.build_message(body or {}, files, self.channel["id"], previous=record.original)
        edited["flags"] = int(edited["flags"]) & ~LOADING
        record.original = edited
        return json_response(edited)

    async def _delete_original(self: FakeDiscord, request: web.Request) -> web.Response:
        self._record(request, None, [], 204)
        record = self._webhook_record(request)
        if isinstance(record, web.Response):
            return record
        record.original = None
        return web.Response(status=204)

    async def _followup(self: FakeDiscord, request: web.Request) -> web.Response:
        body, files = await self._body(request)
        record = self._webhook_record(request)
        if isinstance(record, web.Response):
            return record
        if refusal := self.too_large(files):
            return refusal
        message = self.build_message(body or {}, files, self.channel["id"], interaction_id=record.id)
        record.followups.append(message)
        return json_response(message)

    async def _edit_followup(self: FakeDiscord, request: web.Request) -> web.Response:
        body, files = await self._body(request)
        record = self._webhook_record(request)
        if isinstance(record, web.Response):
            return record
        if refusal := self.too_large(files):
            return refusal
        for index, message in enumerate(record.followups):
            if message["id"] == request.match_info["message"]:
                record.followups[index] = self.build_message(body or {}, files, message["channel_id"], previous=message)
                return json_response(record.followups[index])
        return error_response(404, 10008, "Unknown Message")
