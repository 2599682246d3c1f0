"""Folders and files that hold people's data (the database, the audio, the log) are their owner's alone.

Folders are made 0700 and files 0600 whatever the process's umask; `songbot`'s service commands also
set the umask to 0077, so files that libraries create (SQLite's WAL, a log file) start that way too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600

log = logging.getLogger(__name__)


def private_dir(path: Path, tighten: bool = False) -> Path:
    """Create `path` (and missing parents) as folders only their owner can read, write or list.

    A folder that already exists keeps its mode unless `tighten` is set: songbot tightens its own
    folders (the data folder, the blob folders), never one an operator merely points it at.
    """
    created = [folder for folder in (path, *path.parents) if not folder.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    for folder in created:
        os.chmod(folder, DIR_MODE)
    if tighten and path not in created:
        _tighten(path)
    return path


def _tighten(folder: Path) -> None:
    """Make an existing folder owner-only; a folder we may not change (read-only, not ours) is left as it is."""
    try:
        os.chmod(folder, DIR_MODE)
    except OSError as exc:
        log.warning("could not make %s owner-only (%s); left as it is", folder, exc.strerror or exc)


def private_file(path: Path) -> Path:
    """Create `path` empty if it is missing, and make it readable and writable by its owner alone."""
    path.touch(mode=FILE_MODE, exist_ok=True)
    os.chmod(path, FILE_MODE)
    return path
