"""The fake Discord's gateway websocket (tests only).

Speaks the v10 gateway as discord.py's ``DiscordWebSocket`` expects it: ``HELLO`` on connect, ``IDENTIFY``
answered by ``READY`` (with a loopback ``resume_gateway_url``) and one ``GUILD_CREATE`` per guild,
heartbeats acknowledged, ``RESUME`` answered by ``RESUMED``. Frames are plain JSON text: discord.py asks for
``compress=zlib-stream`` but only inflates binary frames. Tests push events with ``dispatch``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

Json = dict[str, Any]
_log = logging.getLogger(__name__)

# Gateway opcodes (discord-api-docs "Gateway Opcodes").
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 10, 11
# Close code Discord uses for a bad token in IDENTIFY.
AUTHENTICATION_FAILED = 4004
HEARTBEAT_INTERVAL_MS = 41250


@dataclass
class GatewaySession:
    """One connected client websocket."""

    socket: web.WebSocketResponse
    sequence: int = 0
    identified: bool = False
    intents: int | None = None
    session_id: str = ""
    received: list[Json] = field(default_factory=list)

    async def send(self, op: int, data: Any, event: str | None = None) -> None:
        """Send one gateway frame (dispatches carry a sequence number)."""
        frame: Json = {"op": op, "d": data, "s": None, "t": event}
        if op == DISPATCH:
            self.sequence += 1
            frame["s"] = self.sequence
        await self.socket.send_str(json.dumps(frame))


class GatewayHub:
    """Accepts gateway connections and dispatches events to every identified session.

    Args:
        token: The bot token IDENTIFY must carry.
        ready_payload: Builds the READY ``d`` for a new session id.
        guild_payloads: Builds the GUILD_CREATE payloads sent after READY.
        next_id: Hands out session ids.
    """

    def __init__(
        self,
        token: str,
        ready_payload: Callable[[str], Json],
        guild_payloads: Callable[[], list[Json]],
        next_id: Callable[[], str],
    ) -> None:
        self._token = token
        self._ready_payload = ready_payload
        self._guild_payloads = guild_payloads
        self._next_id = next_id
        self.sessions: list[GatewaySession] = []
        self.identify_count = 0
        self._identified = asyncio.Event()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The websocket route: HELLO, then answer frames until the client goes away."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        session = GatewaySession(socket=socket)
        self.sessions.append(session)
        await session.send(HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS})
        try:
            async for frame in socket:
                if frame.type is not WSMsgType.TEXT:
                    continue
                await self._on_frame(session, json.loads(frame.data))
        finally:
            self.sessions.remove(session)
        return socket

    async def _on_frame(self, session: GatewaySession, frame: Json) -> None:
        session.received.append(frame)
        op, data = frame.get("op"), frame.get("d")
        if op == HEARTBEAT:
            await session.send(HEARTBEAT_ACK, None)
        elif op == IDENTIFY:
            await self._identify(session, data or {})
        elif op == RESUME:
            session.identified = True
            await session.send(DISPATCH, {}, "RESUMED")

    async def _identify(self, session: GatewaySession, data: Json) -> None:
        if data.get("token") != self._token:
            await session.socket.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return
        session.intents = data.get("intents")
        session.session_id = self._next_id()
        await session.send(DISPATCH, self._ready_payload(session.session_id), "READY")
        for guild in self._guild_payloads():
            await session.send(DISPATCH, guild, "GUILD_CREATE")
        session.identified = True
        self.identify_count += 1
        self._identified.set()

    async def dispatch(self, event: str, data: Json) -> int:
        """Send a DISPATCH event to every identified session; return how many got it."""
        targets = [s for s in self.sessions if s.identified and not s.socket.closed]
        for session in targets:
            await session.send(DISPATCH, data, event)
        return len(targets)

    async def wait_identified(self, timeout_s: float = 10.0) -> None:
        """Wait until at least one client has identified."""
        await asyncio.wait_for(self._identified.wait(), timeout_s)

    async def close(self) -> None:
        """Close every open socket (the client sees a normal close)."""
        for session in list(self.sessions):
            await session.socket.close()
