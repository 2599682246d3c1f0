"""Structured logs: `time level logger message key=value ...` on stderr.

Message text and tokens never go into logs (the scrubber is `storage.ops.scrub`'s, which also cleans the
error texts stored in the tables); httpx's request lines (which carry the Telegram
token in the URL) are silenced here, once, for every process. In the console chat, what native
libraries print on file descriptor 2 (libmpg123's "Illegal Audio-MPEG-Header" notes, FFmpeg's
warnings) goes to the log file too (`native_notes_to`), so that the terminal holds only the chat.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from storage.ops.scrub import Scrubber
from storage.private import private_dir, private_file

STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}
QUIET = ("httpx", "httpcore", "telegram.ext.Updater", "discord.gateway", "discord.http", "aiohttp.access", "alembic")


class KeyValueFormatter(logging.Formatter):
    """Appends the record's `extra` fields as key=value pairs, and blanks out any secret."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        self.scrub = Scrubber(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """Format the base line (traceback included), then the extras; tokens never get through."""
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in STANDARD and not k.startswith("_")}
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        return self.scrub(line)


def configure(level: str = "INFO", secrets: Iterable[str] = (), path: Path | None = None) -> None:
    """Set up the root logger; `secrets` (the bot tokens) are blanked in every line.

    Lines go to stderr, or appended to `path` (the console chat keeps its terminal for the chat).
    Python warnings go to the log too.
    """
    handler: logging.Handler
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        private_dir(path.parent)
        handler = logging.FileHandler(private_file(path), encoding="utf-8")
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)


def native_notes_to(path: Path) -> None:
    """From now on, send what C libraries write to file descriptor 2 to the log file at `path`.

    Python's own `sys.stderr` is moved to a copy of the old descriptor, so it still reaches the
    terminal; only writes below Python (libsndfile's libmpg123, FFmpeg) land in the log.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    log_fd = os.open(private_file(path), os.O_WRONLY | os.O_APPEND)
    try:
        os.dup2(log_fd, 2)
    finally:
        os.close(log_fd)
    sys.stderr = os.fdopen(terminal, "w", encoding="utf-8", errors="backslashreplace", buffering=1)
