"""MP3 encoding off the GPU loop: a pool of spawned processes that encode, tag and hash a track.

The engine's loop hands each finished track to the pool and goes back to the GPU; the child writes
the tagged MP3 to a scratch path and returns its SHA-256, and the engine then commits the file and
completes the job. Children are spawned (never forked from a process holding CUDA and database
handles) and import only ``storage.media.audio`` and ``storage.blobs.local``. With 0 processes the encodes run
in threads of the engine process (libsndfile and LAME release the GIL), which tests use.

The children die with the engine however it dies (a SIGKILL included): each watches its parent's pid
and exits once it changes, and on Linux the kernel also kills it when the engine's main thread ends
(`PR_SET_PDEATHSIG`). They ignore SIGINT: Ctrl-C in a terminal reaches the whole process group, and
stopping is the engine's decision (it finishes or abandons the encodes and closes the pool).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from storage.blobs.local import sha256_of
from storage.media import audio

log = logging.getLogger("songbot.engine")

THREADS_WHEN_INLINE = 4
PARENT_WATCH_S = 0.2  # how often a child looks whether its engine is still there
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def child_setup(parent_pid: int, kernel_watch: bool) -> None:
    """First thing in every encode process: leave Ctrl-C to the engine, and end with it.

    Args:
        parent_pid: the engine's pid, as the engine saw it.
        kernel_watch: the pool was started from the engine's main thread, so the kernel's
            parent-death signal (sent when the *thread* that spawned a child ends) means the engine ended.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if kernel_watch:
        _die_with_parent_thread()
    if os.getppid() != parent_pid:  # the engine died before the watch was set up
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _die_with_parent_thread() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # an unusual libc: the pid watch below still holds
        pass


def _watch_parent(parent_pid: int) -> None:
    """Exit the child as soon as it is adopted by another process: its engine is gone."""
    stopped = threading.Event()  # never set: an interruptible wait between looks
    while os.getppid() == parent_pid:
        stopped.wait(PARENT_WATCH_S)
    os._exit(1)


def encode_track(pcm: np.ndarray, rate: int, temp: str, tags: audio.Tags) -> str:
    """Encode ``pcm`` (int16 or float, (samples, 2)) as a tagged MP3 at ``temp``; returns its SHA-256.

    Raises:
        OSError: the disk's own error (a full disk, a read-only folder), also when a library wrapped it
            in an error of its own: only the outer error crosses the process boundary, and the engine
            decides on its errno whether to try again (`engine/failures.py`).
    """
    try:
        path = audio.encode_mp3(pcm, Path(temp), tags, rate=rate)
        return sha256_of(path)
    except OSError:
        raise
    except Exception as error:
        cause = _os_error(error)
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror, temp) from error


def _os_error(error: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class PoolClosed(Exception):
    """The engine is stopping and gave up its encodes: the track is not stored, its job is given back."""


class EncodePool:
    """Encodes tracks in spawned processes (``processes`` of them), or in threads when it is 0."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._executor: Executor | None = None
        self._lock = threading.Lock()
        self._abandoned = False

    def start(self) -> EncodePool:
        """Start the processes now, from this thread (the engine's main thread: see `child_setup`)."""
        self._pool()
        return self

    def submit(self, pcm: np.ndarray, rate: int, temp: Path, tags: audio.Tags) -> Future[str]:
        """Start encoding one track; the future gives the file's SHA-256 or the encoder's error.

        Raises:
            PoolClosed: after `abandon()`.
        """
        return self._pool().submit(encode_track, pcm, rate, str(temp), tags)

    def retry(self, pcm: np.ndarray, rate: int, temp: Path, tags: audio.Tags) -> str:
        """After a child died (the pool is then broken): a new pool, and this track encoded once more."""
        with self._lock:
            if self._abandoned:
                raise PoolClosed("the engine is stopping")
            broken, self._executor = self._executor, None
        log.warning("an encode process died; starting a new pool")
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)
        return self.submit(pcm, rate, temp, tags).result()

    def abandon(self) -> None:
        """Stop now (an engine whose stop must not wait longer): kill the processes, fail what they ran.

        The waiting encodes end with `BrokenProcessPool` and no new pool is started (`PoolClosed`);
        the processes are killed rather than asked, since an encode does not look up from its work.
        """
        with self._lock:
            self._abandoned = True
            executor, self._executor = self._executor, None
        if isinstance(executor, ProcessPoolExecutor):
            processes = dict(getattr(executor, "_processes", None) or {})  # the pool has no public handle on them
            for process in processes.values():
                process.kill()
            # Every waiting encode now ends with BrokenProcessPool; joining the pool's thread leaves nothing open.
            executor.shutdown(wait=True)
        elif executor is not None:  # threads can't be stopped: what they run finishes
            executor.shutdown(wait=False)

    def close(self) -> None:
        """Wait for running encodes and stop the processes."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _pool(self) -> Executor:
        with self._lock:
            if self._abandoned:
                raise PoolClosed("the engine is stopping")
            if self._executor is None:
                if self.processes > 0:
                    self._executor = self._spawned()
                else:
                    self._executor = ThreadPoolExecutor(THREADS_WHEN_INLINE, thread_name_prefix="encode")
            return self._executor

    def _spawned(self) -> ProcessPoolExecutor:
        """A process pool whose children are all started now, by this thread, and tied to this process."""
        main = threading.current_thread() is threading.main_thread()
        executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=child_setup,
            initargs=(os.getpid(), main),
        )
        # The pool starts a child per submit until it has them all: start them here, so the thread that
        # spawned them (the one the kernel's parent-death signal follows) is known to be this one.
        for _ in range(self.processes):
            executor.submit(int)
        return executor
