"""Webhook mode: a small aiohttp server that takes Telegram's POSTs and feeds the PTB application.

PTB's own webhook server needs tornado; songbot already ships aiohttp, so this follows PTB's
``customwebhookbot`` example instead: check the secret header, decode the update, put it on the
application's update queue.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import Application

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_secret(token: str) -> str:
    """A secret derived from the token: stable across restarts, useless for guessing the token."""
    return hashlib.sha256(f"songbot-webhook:{token}".encode()).hexdigest()[:48]


class WebhookServer:
    """Receives updates on ``listen:port`` at the path of the public webhook URL."""

    def __init__(self, application: Application, url: str, listen: str, port: int, secret: str) -> None:
        self._application = application
        self._path = urlsplit(url).path or "/"
        self._listen, self._port, self._secret = listen, port, secret
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Start listening (before calling setWebhook, so no update finds the door closed)."""
        app = web.Application()
        app.router.add_post(self._path, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._listen, self._port).start()

    async def stop(self) -> None:
        """Stop listening; Telegram keeps new updates until the bot is back."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        if request.headers.get(SECRET_HEADER) != self._secret:
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), self._application.bot)
        except ValueError:
            return web.Response(status=400)
        await self._application.update_queue.put(update)
        return web.Response()
