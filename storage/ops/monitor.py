"""The monitoring port: `/metrics` (Prometheus), `/healthz` (alive) and `/readyz` (able to work).

One small threaded HTTP server per process, on `host:port` (loopback unless METRICS_HOST says
otherwise), in daemon threads beside the process's real work. `/readyz` asks the process's
readiness checks in turn; the first that names a reason turns it into a 503 with that reason.
Requests are not logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine, text

from storage.contract.errors import StartupError

log = logging.getLogger("songbot.monitor")

# A readiness check: None when ready, else one short reason.
Check = Callable[[], str | None]


def database_check(db: Engine) -> Check:
    """Ready while `SELECT 1` succeeds."""

    def check() -> str | None:
        try:
            with db.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
            return f"database unreachable ({type(error).__name__})"
        return None

    return check


class Readiness:
    """A readiness check whose checks are filled in later (while models load, it names a reason)."""

    def __init__(self, until_then: str) -> None:
        self.checks: list[Check] = [lambda: until_then]

    def use(self, *checks: Check) -> None:
        """From now on, ready when every one of `checks` is."""
        self.checks = list(checks)

    def __call__(self) -> str | None:
        """The first reason not to be ready, or None."""
        for check in self.checks:
            reason = check()
            if reason:
                return reason
        return None


class Monitor:
    """Serves the three endpoints until `stop()`."""

    def __init__(self, registry: CollectorRegistry, checks: Sequence[Check], host: str, port: int) -> None:
        """Bind now (port 0: any free port; see `port`), serve after `start()`."""
        self.registry = registry
        self.checks = list(checks)
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="monitor", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server.server_address[1])

    def start(self) -> Monitor:
        """Serve in a background thread."""
        self._thread.start()
        log.info("monitoring port open", extra={"port": self.port})
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def not_ready(self) -> str | None:
        """The first reason not to be ready, or None."""
        for check in self.checks:
            reason = check()
            if reason:
                return reason
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(monitor.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b"ok\n")
                elif path == "/readyz":
                    reason = monitor.not_ready()
                    self._send(503 if reason else 200, f"{reason or 'ready'}\n".encode())
                else:
                    self._send(404, b"not found: /metrics, /healthz and /readyz are here\n")

            def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Requests are not logged (scrapes every few seconds would drown the log)."""

        return Handler


def start_monitor(registry: CollectorRegistry, checks: Sequence[Check], host: str, port: int | None) -> Monitor | None:
    """The monitoring port when `port` is set, else None (metrics off)."""
    if port is None:
        return None
    try:
        monitor = Monitor(registry, checks, host, port)
    except OSError as error:
        raise StartupError(
            f"Could not open the metrics port {host}:{port} ({error.strerror or error}); "
            "choose another port or stop what uses it."
        ) from error
    return monitor.start()
