"""What the bot and the engine need of a blob store, and the names blobs get in every store.

Rows store paths relative to the store's root (`uploads/…`, `tracks/…`). `storage.blobs.local.Blobs` keeps
blobs in a local folder (the default), `storage.blobs.s3.S3Blobs` in an S3-compatible object store
(`BLOB_URL=s3://bucket/prefix`) that several hosts share, and `storage.blobs.stores.open_blobs` picks one.
In either, a blob is visible under its real name only once it is complete.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np


class BlobStore(Protocol):
    """Where uploads and tracks live: a local folder or an object store."""

    def put_upload(self, data: bytes, suffix: str = ".bin") -> str:
        """Store an uploaded source file; returns its relative path."""
        ...

    def uploads(self) -> Iterator[tuple[str, datetime]]:
        """Every stored upload: its relative path and when it was written (naive UTC)."""
        ...

    def stored(self, folder: str) -> Iterator[tuple[str, datetime]]:
        """Every finished blob under `folder` (`tracks`, `latents`), at any depth: its relative path and write time."""
        ...

    def exists(self, relative: str) -> bool:
        """Whether a blob is (still) stored."""
        ...

    def delete(self, relative: str) -> None:
        """Remove a blob; one already gone is fine."""
        ...

    def read_bytes(self, relative: str) -> bytes:
        """A blob's content."""
        ...

    def local_path(self, relative: str) -> Path:
        """A local file holding the blob (the file itself, or a downloaded copy) for an adapter to send."""
        ...

    def prune_copies(self, before: datetime) -> int:
        """Delete local copies (downloads of a remote store) made before `before`; returns how many."""
        ...

    def track_relative(self, job_id: int, attempt: int) -> str:
        """Where the song of a job's attempt goes (each attempt its own blob)."""
        ...

    def put_array(self, relative: str, array: np.ndarray) -> str:
        """Store a numpy array (a song's latents) as `.npy` beside `relative`; returns its relative path."""
        ...

    def get_array(self, relative: str) -> np.ndarray:
        """A stored numpy array."""
        ...

    def scratch_root(self) -> Path:
        """The local folder under which `temp_path` makes scratch files (swept when stale)."""
        ...

    def temp_path(self, relative: str) -> Path:
        """A local scratch file for `relative`, to be committed with `commit`."""
        ...

    def commit(self, temp: Path, relative: str) -> object:
        """Publish a finished scratch file under `relative`, atomically, and remove the scratch file."""
        ...


def track_relative(job_id: int, attempt: int) -> str:
    """Where the song of a job's attempt goes: a thousand jobs per folder (as `Blobs` names it)."""
    return f"tracks/{job_id // 1000:04d}/{job_id}-{attempt}.mp3"


def upload_relative(suffix: str) -> str:
    """A fresh name for an uploaded source (as `Blobs` names it)."""
    return f"uploads/{uuid.uuid4().hex}{suffix}"


def array_relative(relative: str) -> str:
    """Where an array kept beside `relative` goes (`.npy`)."""
    return str(Path(relative).with_suffix(".npy"))


def array_bytes(array: np.ndarray) -> bytes:
    """An array as `.npy` bytes (float32, no pickles)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def array_from(data: bytes) -> np.ndarray:
    """An array back from `.npy` bytes; refuses pickles."""
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))
