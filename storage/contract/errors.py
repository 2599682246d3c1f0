"""Every error songbot raises on purpose, in one tree.

    SongbotError                 base; ``.user_message`` is one sentence a person understands
    ├── UserError                the request is refused; shown to the user, never retried
    │   ├── LimitError           a limit (pending cap, quota, duration, size, pause, ban)
    │   ├── NotFound             no such song / job for this user
    │   ├── BadAudio             an upload is not usable audio (not audio, empty, corrupt, too long)
    │   └── Unavailable          nothing can be stored right now (the database's or the blobs' disk is full)
    ├── GenerationError          the engine could not make this track; the job fails, user sees the sentence
    ├── LeaseLost                the worker no longer owns the job (fencing); the result is dropped, not retried
    ├── ModelsMissing            the model directory is incomplete; the engine refuses to start
    └── StartupError             a setting keeps a process from starting (metrics port taken, boto3 missing)

Anything else is a bug: it is logged with its traceback and the user sees a generic sentence.
"""

from __future__ import annotations

import errno

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
SQLITE_FULL = 13
POSTGRES_DISK_FULL = "53100"


class SongbotError(Exception):
    """Base class: carries one sentence for the person on the other side."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class UserError(SongbotError):
    """The request is refused; shown to the user as is, never retried."""


class LimitError(UserError):
    """A limit stops the request (pending cap, quota, duration, size, pause, ban)."""


class NotFound(UserError):
    """No such song or job (or not one this user may touch)."""


class BadAudio(UserError):
    """An uploaded file is not usable audio."""


class Unavailable(UserError):
    """The request can't be stored now (a full disk); nothing was queued, and later it may work."""


DISK_FULL_AT_SUBMIT = "The server's disk is full, so I can't take new requests right now; please try again later."


def disk_full(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, says a disk is full (OS, SQLite or PostgreSQL)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if getattr(current, "sqlite_errorcode", None) == SQLITE_FULL:
            return True
        if getattr(current, "sqlstate", None) == POSTGRES_DISK_FULL:
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


class GenerationError(SongbotError):
    """The engine could not generate this track; the job fails with this sentence."""


class LeaseLost(SongbotError):
    """The worker lost its lease on the job; another worker owns it now."""


class ModelsMissing(SongbotError):
    """The model directory lacks files the chosen backend needs."""


GENERIC_FAILURE = "Something went wrong on our side while making this song; please try again."


class StartupError(SongbotError):
    """A setting keeps a process from starting: the operator reads the sentence and fixes it."""
