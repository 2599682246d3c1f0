"""Which errors are retried, after which waits, and the sentence each one gives its user."""

import errno

import pytest
from mutagen import MutagenError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from engine.failures import (
    DATABASE_DOWN,
    DISK_BROKEN,
    DISK_FULL,
    READ_ONLY,
    SAVE_FAILED,
    Backoff,
    job_sentence,
    retrying,
    saving_sentence,
    storage_errno,
    transient,
)
from storage.contract.errors import GENERIC_FAILURE, BadAudio


def os_error(code):
    return OSError(code, "storage said no")


def wrapped(code):
    """A library's own error raised from the OSError beneath it (mutagen does this when it saves tags)."""
    try:
        try:
            raise os_error(code)
        except OSError as inner:
            raise MutagenError("could not save tags") from inner
    except MutagenError as outer:
        return outer


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (os_error(errno.ENOSPC), DISK_FULL),
        (os_error(errno.EDQUOT), DISK_FULL),
        (wrapped(errno.ENOSPC), DISK_FULL),
        (os_error(errno.EROFS), READ_ONLY),
        (PermissionError(errno.EACCES, "no"), READ_ONLY),
        (os_error(errno.EIO), DISK_BROKEN),
        (OperationalError("UPDATE", {}, Exception("database or disk is full")), DATABASE_DOWN),
        (RuntimeError("LAME refused three channels"), SAVE_FAILED),
        (BadAudio("That file is not audio."), "That file is not audio."),
    ],
)
def test_each_saving_error_has_its_sentence(error, sentence):
    assert saving_sentence(error) == sentence


def test_only_storage_and_connection_errors_are_worth_retrying():
    assert transient(os_error(errno.ENOSPC)) and transient(wrapped(errno.EROFS))
    assert transient(OperationalError("SELECT", {}, Exception("server closed the connection")))
    assert transient(PoolTimeout("QueuePool limit of size 5 overflow 10 reached"))
    assert not transient(FileNotFoundError(errno.ENOENT, "gone"))
    assert not transient(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not transient(DataError("INSERT", {}, Exception("text fields cannot contain NUL")))
    assert not transient(ValueError("a bug"))
    assert storage_errno(ValueError("a bug")) is None


def test_a_failure_before_the_song_exists_is_generic_unless_it_says_more():
    assert job_sentence(RuntimeError("x")) == GENERIC_FAILURE
    assert job_sentence(BadAudio("That file is not audio.")) == "That file is not audio."


def test_backoff_doubles_up_to_its_ceiling():
    assert Backoff(attempts=5, first_s=1.0, max_s=3.0).waits_s() == [1.0, 2.0, 3.0, 3.0]
    assert Backoff(attempts=1).waits_s() == []


def test_retrying_waits_between_tries_and_gives_up_with_the_last_error():
    sleeps, firsts = [], []

    def full(first):
        firsts.append(first)
        raise os_error(errno.ENOSPC)

    with pytest.raises(OSError) as raised:
        retrying(full, Backoff(attempts=3, first_s=0.5), sleeps.append, job_id=1)
    assert raised.value.errno == errno.ENOSPC
    assert sleeps == [0.5, 1.0] and firsts == [True, False, False]


def test_retrying_returns_once_a_try_succeeds_and_never_retries_a_bug():
    tries = iter([os_error(errno.EIO), "done"])

    def flaky(first):
        outcome = next(tries)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    sleeps = []
    assert retrying(flaky, Backoff(), sleeps.append, job_id=1) == "done" and sleeps == [1.0]
    with pytest.raises(ValueError):
        retrying(lambda first: int("x"), Backoff(), sleeps.append, job_id=1)
    assert sleeps == [1.0]
