"""Leaving `songbot chat` in the middle of a song (Ctrl-C or /quit): nothing is left behind.

Real processes: the chat, its engine child and the engine's encode processes. After the chat exits
no process of that tree runs, neither the terminal nor the log shows a traceback, the exit status is
0, and the song is back in the queue without a lease, so the next start runs it at once.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from storage.contract.types import QUEUED, SUCCEEDED
from storage.db import make_engine, utcnow
from storage.queue.jobs import Queue
from tests.bot.console.test_console_e2e import env_for, read_until, wait_for_progress

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to find the processes")


def descendants(root: int) -> set[int]:
    """Every process below `root` now (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie that nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: set[int], timeout_s: float = 60) -> set[int]:
    """Poll until every pid is gone (bounded for a busy machine); those still there."""
    deadline = time.monotonic() + timeout_s
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def wait_for_stage(queue: Queue, job_id: int, stage: str, timeout_s: float = 120) -> None:
    """Poll the job's row until it reaches `stage` (the engine writes it; nothing announces it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = queue.get(job_id)
        if job is not None and job.stage == stage:
            return
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} never reached {stage}")


@pytest.mark.parametrize(
    ("how", "stage"), [("ctrl-c", "generating"), ("/quit", "generating"), ("ctrl-c", "saving"), ("/quit", "saving")]
)
def test_leaving_during_a_song_leaves_no_process_no_traceback_and_the_song_queued(
    tmp_path: Path, how: str, stage: str
) -> None:
    master, slave = pty.openpty()
    chat = subprocess.Popen(
        [sys.executable, "-m", "songbot", "chat"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(tmp_path, ENGINE_ENCODE_PROCESSES="2", ENGINE_LEASE_S="30"),
        cwd=tmp_path,
        start_new_session=True,  # its own process group: Ctrl-C reaches all of it, as in a terminal
    )
    os.close(slave)
    try:
        read_until(chat.stdout.fileno(), "> ")
        os.write(master, b"/song a short one duration=10 seed=1\n")
        read_until(chat.stdout.fileno(), "\u2705 #1 ")  # done: the encode processes are up now
        os.write(master, b"/song a long drone duration=240 seed=2\n")
        queue = Queue(make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}"))
        wait_for_progress(queue, job_id=2)
        wait_for_stage(queue, 2, stage)  # "saving": its 240 s are being encoded, which takes seconds
        tree = descendants(chat.pid)
        assert len(tree) >= 3  # the engine and its encode processes
        if how == "ctrl-c":
            os.killpg(chat.pid, signal.SIGINT)
        else:
            os.write(master, b"/quit\n")
        code = chat.wait(timeout=60)
        err = chat.stderr.read().decode()
    finally:
        os.close(master)
        if chat.poll() is None:
            chat.kill()
    assert wait_gone(tree) == set()
    assert code == 0 and "Traceback" not in err, err
    log = (tmp_path / "data" / "songbot.log").read_text()
    for trouble in ("Traceback", "KeyboardInterrupt", "leaked semaphore", "did not stop in time"):
        assert trouble not in log, log[-3000:]
    job = queue.get(2)
    assert job is not None
    if job.status == SUCCEEDED:  # the engine finished storing it before it stopped: the next start posts it
        assert stage == "saving"
        return
    assert (job.status, job.lease_owner, job.attempts) == (QUEUED, None, 0)
    # The next engine claims it now, not once the old 30 s lease would have run out.
    assert [claimed.id for claimed in queue.claim("next-start", 1, utcnow() + timedelta(seconds=1), 30)] == [2]
