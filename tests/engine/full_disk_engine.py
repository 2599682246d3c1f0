"""`python -m tests.engine.full_disk_engine`: the real `songbot engine`, on a disk that is full while a file exists.

While `$FULL_DISK_FLAG` exists, writing a song's scratch MP3 stops half way with ENOSPC, the way a
full disk stops it; everything else is the real engine process (run with ENGINE_ENCODE_PROCESSES=0,
so the encodes run in this process, where the fault is).
"""

import errno
import os
import sys
from pathlib import Path

import engine.encode
from songbot.cli import main

FLAG = Path(os.environ["FULL_DISK_FLAG"])
_encode_track = engine.encode.encode_track


def encode_track(pcm, rate, temp, tags):
    if FLAG.exists():
        Path(temp).write_bytes(b"\xff\xfb" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), temp)
    return _encode_track(pcm, rate, temp, tags)


engine.encode.encode_track = encode_track
sys.exit(main(["engine"]))
