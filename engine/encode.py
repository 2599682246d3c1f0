"""MP3 encoding off the GPU loop: a pool of spawned processes that encode, tag and hash a track.

The engine's loop hands each finished track to the pool and goes back to the GPU; the child writes
the tagged MP3 to a scratch path and returns its SHA-256, and the engine then commits the file and
completes the job. Children are spawned (never forked from a process holding CUDA and database
handles) and import only ``storage.audio`` and ``storage.blobs``. With 0 processes the encodes run
in threads of the engine process (libsndfile and LAME release the GIL), which tests use.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from storage import audio
from storage.blobs import sha256_of

log = logging.getLogger("songbot.engine")

THREADS_WHEN_INLINE = 4


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


class EncodePool:
    """Encodes tracks in spawned processes (``processes`` of them), or in threads when it is 0."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._executor: Executor | None = None
        self._lock = threading.Lock()

    def submit(self, pcm: np.ndarray, rate: int, temp: Path, tags: audio.Tags) -> Future[str]:
        """Start encoding one track; the future gives the file's SHA-256 or the encoder's error."""
        return self._pool().submit(encode_track, pcm, rate, str(temp), tags)

    def retry(self, pcm: np.ndarray, rate: int, temp: Path, tags: audio.Tags) -> str:
        """After a child died (the pool is then broken): a new pool, and this track encoded once more."""
        log.warning("an encode process died; starting a new pool")
        with self._lock:
            broken, self._executor = self._executor, None
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)
        return self.submit(pcm, rate, temp, tags).result()

    def close(self) -> None:
        """Wait for running encodes and stop the processes."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _pool(self) -> Executor:
        with self._lock:
            if self._executor is None:
                if self.processes > 0:
                    context = multiprocessing.get_context("spawn")
                    self._executor = ProcessPoolExecutor(self.processes, mp_context=context)
                else:
                    self._executor = ThreadPoolExecutor(THREADS_WHEN_INLINE, thread_name_prefix="encode")
            return self._executor
