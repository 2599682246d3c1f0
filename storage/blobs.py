"""Blobs: uploaded sources and finished songs, addressed by relative paths.

Rows store paths relative to the store's root (`uploads/…`, `tracks/…`), so the store can move, or
be shared by several hosts, without touching the database. `BlobStore` is what the bot and the
engine use; `Blobs` keeps them in a local folder (the default), `storage.s3blobs.S3Blobs` in an
S3-compatible object store (`BLOB_URL=s3://bucket/prefix`), and `storage.stores.open_blobs` picks
one. Either way a blob is visible under its real name only once it is complete: files are written
under a temporary name and renamed, objects are uploaded whole.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    """Where uploads and tracks live: a local folder or an object store."""

    def put_upload(self, data: bytes, suffix: str = ".bin") -> str:
        """Store an uploaded source file; returns its relative path."""
        ...

    def uploads(self) -> Iterator[tuple[str, datetime]]:
        """Every stored upload: its relative path and when it was written (naive UTC)."""
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

    def temp_path(self, relative: str) -> Path:
        """A local scratch file for `relative`, to be committed with `commit`."""
        ...

    def commit(self, temp: Path, relative: str) -> object:
        """Publish a finished scratch file under `relative`, atomically, and remove the scratch file."""
        ...


def track_relative(job_id: int, attempt: int) -> str:
    """Where the song of a job's attempt goes: a thousand jobs per folder."""
    return f"tracks/{job_id // 1000:04d}/{job_id}-{attempt}.mp3"


def upload_relative(suffix: str) -> str:
    """A fresh name for an uploaded source."""
    return f"uploads/{uuid.uuid4().hex}{suffix}"


class Blobs:
    """A folder of audio files (the default store)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        (self.root / "tracks").mkdir(parents=True, exist_ok=True)

    def path(self, relative: str) -> Path:
        """The absolute path of a stored blob."""
        return self.root / relative

    def local_path(self, relative: str) -> Path:
        """The blob's own file."""
        return self.path(relative)

    def read_bytes(self, relative: str) -> bytes:
        """A blob's content."""
        return self.path(relative).read_bytes()

    def put_upload(self, data: bytes, suffix: str = ".bin") -> str:
        """Store an uploaded source file; returns its relative path."""
        relative = upload_relative(suffix)
        self._write(self.root / relative, data)
        return relative

    def uploads(self) -> Iterator[tuple[str, datetime]]:
        """Every file under uploads/ (half-written ones too): its relative path and when it was written.

        The time is naive UTC, like the tables'.
        """
        for path in (self.root / "uploads").iterdir():
            if path.is_file():
                written = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
                yield f"uploads/{path.name}", written

    def exists(self, relative: str) -> bool:
        """Whether a blob is (still) stored."""
        return (self.root / relative).is_file()

    def delete(self, relative: str) -> None:
        """Remove a blob; one already gone is fine (another process may have swept it)."""
        (self.root / relative).unlink(missing_ok=True)

    def prune_copies(self, before: datetime) -> int:
        """Nothing: a local folder makes no copies."""
        return 0

    def track_relative(self, job_id: int, attempt: int) -> str:
        """Where the song of a job's attempt goes (each attempt its own file)."""
        return track_relative(job_id, attempt)

    def temp_path(self, relative: str) -> Path:
        """A scratch path beside `relative`, to be committed with `commit`."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp.mp3")

    def commit(self, temp: Path, relative: str) -> Path:
        """Atomically move a finished scratch file to its real name."""
        target = self.root / relative
        os.replace(temp, target)
        return target

    def _write(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.tmp")
        temp.write_bytes(data)
        os.replace(temp, target)


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
