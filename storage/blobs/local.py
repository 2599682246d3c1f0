"""The blob directory: uploaded sources and finished songs, addressed by relative paths.

Rows store paths relative to the root, so the directory can move (or be shared by several
hosts) without touching the database. Files are written under a temporary name and renamed,
so a crash never leaves half a file under a real name. Folders are 0700 and files 0600
(`storage.private`): the audio is its owner's alone.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from storage.blobs.store import array_bytes, array_from, array_relative
from storage.private import FILE_MODE, private_dir, private_file


class Blobs:
    """A folder of audio files."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        for folder in (self.root, self.root / "uploads", self.root / "tracks"):
            private_dir(folder, tighten=True)

    def path(self, relative: str) -> Path:
        """The absolute path of a stored blob."""
        return self.root / relative

    def local_path(self, relative: str) -> Path:
        """The blob's own file (see `storage.blobs.store.BlobStore`)."""
        return self.path(relative)

    def read_bytes(self, relative: str) -> bytes:
        """A blob's content."""
        return self.path(relative).read_bytes()

    def prune_copies(self, before: datetime) -> int:
        """Nothing: a local folder makes no copies."""
        return 0

    def put_upload(self, data: bytes, suffix: str = ".bin") -> str:
        """Store an uploaded source file; returns its relative path."""
        relative = f"uploads/{uuid.uuid4().hex}{suffix}"
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

    def stored(self, folder: str) -> Iterator[tuple[str, datetime]]:
        """Every finished file under `folder`, at any depth; hidden names (scratch, half-written) are not blobs."""
        base = self.root / folder
        if not base.is_dir():
            return
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                written = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
                yield str(path.relative_to(self.root)), written

    def exists(self, relative: str) -> bool:
        """Whether a blob is (still) stored."""
        return (self.root / relative).is_file()

    def delete(self, relative: str) -> None:
        """Remove a blob; one already gone is fine (another process may have swept it)."""
        (self.root / relative).unlink(missing_ok=True)

    def track_relative(self, job_id: int, attempt: int) -> str:
        """Where the song of a job's attempt goes (each attempt its own file)."""
        return f"tracks/{job_id // 1000:04d}/{job_id}-{attempt}.mp3"

    def scratch_root(self) -> Path:
        """Scratch files lie beside the tracks they become."""
        return self.root / "tracks"

    def temp_path(self, relative: str) -> Path:
        """A scratch path beside `relative`, to be committed with `commit`."""
        target = self.root / relative
        private_dir(target.parent, tighten=True)
        return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp.mp3")

    def commit(self, temp: Path, relative: str) -> Path:
        """Atomically move a finished scratch file to its real name."""
        target = self.root / relative
        os.chmod(temp, FILE_MODE)  # written by an encoder, perhaps in another process with its own umask
        os.replace(temp, target)
        return target

    def put_array(self, relative: str, array: np.ndarray) -> str:
        """Store a numpy array (a song's latents) as `.npy` beside `relative`; returns its relative path."""
        relative = array_relative(relative)
        self._write(self.root / relative, array_bytes(array))
        return relative

    def get_array(self, relative: str) -> np.ndarray:
        """A stored numpy array."""
        return array_from(self.read_bytes(relative))

    def _write(self, target: Path, data: bytes) -> None:
        private_dir(target.parent, tighten=True)
        temp = target.with_name(f".{target.name}.tmp")
        private_file(temp).write_bytes(data)
        os.replace(temp, target)


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
