"""What one job's error means: whether it is worth retrying, and the sentence its user reads.

The worker (`engine/worker.py`) guards every stage of every job with these. A storage error (a full
disk, a folder the engine may not write to, a database that does not answer) is retried with
back-off; after the last try it fails that job alone, with a sentence that says what happened. Any
other error fails the job at once. Either way the loop goes on with its models loaded.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from storage.contract.errors import GENERIC_FAILURE, SongbotError

log = logging.getLogger("songbot.engine")
T = TypeVar("T")

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
DISK_ERRNOS = frozenset({errno.EIO})
STORAGE_ERRNOS = DISK_FULL_ERRNOS | READ_ONLY_ERRNOS | DISK_ERRNOS

SAVE_FAILED = "I couldn't save this song as an MP3; please try again."
DISK_FULL = (
    "The song was made but could not be saved: the server's disk is full, "
    "so please try again once its operators have made room."
)
READ_ONLY = (
    "The song was made but could not be saved: the server is not allowed to write to its music folder, "
    "so please try again once its operators have fixed that."
)
DISK_BROKEN = (
    "The song was made but could not be saved: the server's disk reported an error, so please try again later."
)
DATABASE_DOWN = (
    "The song was made but could not be recorded: the server's database did not answer, so please try again later."
)
SOURCE_GONE = "The recording to cover is no longer stored on the server, so please send it again."


@dataclass(frozen=True)
class Backoff:
    """How a storage step is retried: `attempts` tries in all, waiting `first_s`, then twice as long each time."""

    attempts: int = 3
    first_s: float = 1.0
    max_s: float = 10.0

    def waits_s(self) -> list[float]:
        """The waits between the tries, in seconds."""
        return [min(self.first_s * 2**n, self.max_s) for n in range(max(0, self.attempts - 1))]


def storage_errno(error: BaseException) -> int | None:
    """The errno of the storage error behind `error` (itself or what it was raised from), else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in STORAGE_ERRNOS:
            return current.errno
        current = current.__cause__ or current.__context__
    return None


def database_down(error: BaseException) -> bool:
    """Whether the database failed to answer (lost, locked, full, or no free connection), not a bad statement."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def transient(error: BaseException) -> bool:
    """Whether trying the same step again later may succeed."""
    return storage_errno(error) is not None or database_down(error)


def job_sentence(error: BaseException, default: str = GENERIC_FAILURE) -> str:
    """The sentence for a job that failed with `error` before its song existed."""
    return error.user_message if isinstance(error, SongbotError) else default


def saving_sentence(error: BaseException) -> str:
    """The sentence for a job whose song was made but could not be saved: what happened, in plain words."""
    code = storage_errno(error)
    if code in DISK_FULL_ERRNOS:
        return DISK_FULL
    if code in READ_ONLY_ERRNOS:
        return READ_ONLY
    if code in DISK_ERRNOS:
        return DISK_BROKEN
    if database_down(error):
        return DATABASE_DOWN
    return job_sentence(error, SAVE_FAILED)


def retrying(step: Callable[[bool], T], backoff: Backoff, sleep: Callable[[float], object], job_id: int) -> T:
    """Run `step(first)`; on a transient error wait and run it again, `backoff.attempts` times in all.

    Returns:
        What the step returned.

    Raises:
        The step's last error, or at once the first one that is not transient.
    """
    waits = backoff.waits_s()
    first = True
    while True:
        try:
            return step(first)
        except Exception as error:
            if not waits or not transient(error):
                raise
            wait_s = waits.pop(0)
            log.warning(
                "storage error; retrying",
                extra={"job": job_id, "error": type(error).__name__, "errno": storage_errno(error), "in_s": wait_s},
            )
            sleep(wait_s)
            first = False
