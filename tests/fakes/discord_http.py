"""Wire helpers for the fake Discord's REST side: responses, request bodies, rate limits (tests only).

discord.py is strict about a few things a naive fake gets wrong (each cost a failure once):
``Content-Type`` must be exactly ``application/json`` (``http.json_or_text`` compares the header), and a
429 is only retried when it carries a ``Via`` header and a JSON body with ``retry_after`` (otherwise it is
taken for a Cloudflare ban and raised).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Json = dict[str, Any]


@dataclass(frozen=True)
class UploadedFile:
    """One file part of a multipart request (``files[n]``)."""

    field: str
    filename: str
    data: bytes
    content_type: str


@dataclass
class Call:
    """One REST request the fake received, as the tests inspect it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    files: list[UploadedFile]
    status: int = 200
    at: float = field(default_factory=time.monotonic)

    @property
    def is_multipart(self) -> bool:
        """True when the request carried files."""
        return bool(self.files)


@dataclass
class RateLimitRule:
    """Answer the next ``times`` matching requests with a 429."""

    method: str
    pattern: re.Pattern[str]
    times: int
    retry_after_s: float
    is_global: bool
    multipart_only: bool
    hits: int = 0

    def matches(self, request: web.Request) -> bool:
        """True when this rule still applies to ``request``."""
        if self.hits >= self.times or request.method != self.method:
            return False
        if self.multipart_only and not request.content_type.startswith("multipart/"):
            return False
        return self.pattern.search(request.path) is not None


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with the exact Content-Type discord.py checks for."""
    all_headers = {"Content-Type": "application/json"} | ratelimit_headers(remaining=4) | (headers or {})
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


def error_response(status: int, code: int, message: str) -> web.Response:
    """A Discord JSON error (``{"code", "message"}``)."""
    return json_response({"code": code, "message": message}, status=status)


def ratelimit_headers(*, remaining: int, reset_after_s: float = 1.0, bucket: str = "fakebucket") -> dict[str, str]:
    """The X-RateLimit-* headers Discord sends on every REST response."""
    return {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after_s:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after_s:.3f}",
        "X-RateLimit-Bucket": bucket,
    }


def too_many_requests(rule: RateLimitRule) -> web.Response:
    """A 429 exactly as Discord (behind Google's front end) sends it."""
    headers = ratelimit_headers(remaining=0, reset_after_s=rule.retry_after_s) | {
        "Via": "1.1 google",
        "Retry-After": str(max(1, round(rule.retry_after_s))),
        "X-RateLimit-Scope": "global" if rule.is_global else "user",
    }
    if rule.is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {
        "message": "You are being rate limited.",
        "retry_after": rule.retry_after_s,
        "global": rule.is_global,
    }
    return json_response(body, status=429, headers=headers)


async def read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """Parse a JSON body, or a multipart body (``payload_json`` plus ``files[n]`` parts)."""
    if request.content_type.startswith("multipart/"):
        return await _read_multipart(request)
    raw = await request.read()
    return (json.loads(raw) if raw else None), []


async def _read_multipart(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    payload: Any = None
    files: list[UploadedFile] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        data = await part.read()  # type: ignore[union-attr]
        name = part.name or ""  # type: ignore[union-attr]
        if name == "payload_json":
            payload = json.loads(data)
        elif part.filename:  # type: ignore[union-attr]
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            files.append(UploadedFile(name, part.filename, bytes(data), content_type))  # type: ignore[union-attr]
    return payload, files
