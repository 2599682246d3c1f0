"""The data folder, the SQLite database (and its WAL) and the audio files are their owner's alone."""

import os
import stat
from pathlib import Path

import pytest

from storage.blobs.local import Blobs
from storage.db import make_engine
from storage.private import private_dir, private_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask():
    """The usual umask (0022), under which plain creation would give 0755 folders and 0644 files."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_sqlite_database_and_its_folder_are_owner_only(tmp_path):
    data = tmp_path / "fresh" / "data"
    engine = make_engine(f"sqlite:///{data / 'songbot.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
        conn.exec_driver_sql("INSERT INTO t VALUES ('discord interaction token')")
    assert mode(data) == 0o700 and mode(data.parent) == 0o700
    assert mode(data / "songbot.db") == 0o600
    assert mode(data / "songbot.db-wal") == 0o600  # SQLite gives its WAL the database file's mode
    engine.dispose()


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    path = tmp_path / "songbot.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    make_engine(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600


def test_audio_files_and_their_folders_are_owner_only(tmp_path):
    blobs = Blobs(tmp_path / "data" / "blobs")
    upload = blobs.path(blobs.put_upload(b"ID3 audio", ".mp3"))
    relative = blobs.track_relative(1234, 1)
    scratch = blobs.temp_path(relative)
    scratch.write_bytes(b"an encoder's output")  # 0644 under this umask, as an encoder process leaves it
    track = blobs.commit(scratch, relative)
    assert mode(upload) == 0o600 and mode(track) == 0o600
    for folder in (blobs.root, blobs.root.parent, upload.parent, track.parent, track.parent.parent):
        assert mode(folder) == 0o700, folder


def test_private_helpers_leave_existing_parents_alone(tmp_path):
    tmp_path.chmod(0o755)
    private_file(private_dir(tmp_path / "a" / "b") / "f")
    assert mode(tmp_path) == 0o755
    assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b"), mode(tmp_path / "a" / "b" / "f")) == (0o700, 0o700, 0o600)


def test_a_folder_the_operator_points_at_keeps_its_mode(tmp_path):
    shared = tmp_path / "srv"
    shared.mkdir(mode=0o755)
    make_engine(f"sqlite:///{shared / 'songbot.db'}").dispose()
    assert mode(shared) == 0o755 and mode(shared / "songbot.db") == 0o600
    private_dir(shared, tighten=True)
    assert mode(shared) == 0o700


def test_a_folder_that_cannot_be_tightened_is_left_as_it_is(tmp_path: Path, monkeypatch, caplog) -> None:
    folder = tmp_path / "tracks"
    folder.mkdir(mode=0o755)

    def refuse(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("storage.private.os.chmod", refuse)
    assert private_dir(folder, tighten=True) == folder
    assert "left as it is" in caplog.text
