"""`python -m tests.engine.faulty_disk_engine`: the real `songbot engine`, on a disk that fails while a file exists.

While `$DISK_FAULT_FLAG` exists, writing a song's scratch MP3 stops half way with the error numbered
`$DISK_FAULT_ERRNO` (ENOSPC: a full disk; EROFS: a read-only one), as the disk would stop it;
everything else is the real engine process (run with ENGINE_ENCODE_PROCESSES=0, so that the encodes
run in this process, where the fault is).
"""

import os
import sys
from pathlib import Path

import engine.encode
from songbot.cli import main

FLAG = Path(os.environ["DISK_FAULT_FLAG"])
ERRNO = int(os.environ["DISK_FAULT_ERRNO"])
_encode_track = engine.encode.encode_track


def encode_track(pcm, rate, temp, tags):
    if FLAG.exists():
        Path(temp).write_bytes(b"\xff\xfb" * 100)
        raise OSError(ERRNO, os.strerror(ERRNO), temp)
    return _encode_track(pcm, rate, temp, tags)


engine.encode.encode_track = encode_track
sys.exit(main(["engine"]))
