"""End to end through `python -m songbot chat`: real processes, real queue, sketch backend."""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy.exc import OperationalError

from storage.db import make_engine
from storage.media import audio
from storage.queue.jobs import Queue
from tests.helpers import REPO

RESULT = re.compile(r"^✅ #(\d+) seed (\d+) (/.+\.mp3)$", re.M)


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SONGBOT_DATA_DIR": str(tmp_path / "data"),
            "MODEL_DIR": str(tmp_path / "no-models"),
            "ENGINE_BACKEND": "sketch",
            "ENGINE_POLL_S": "0.1",
            "DELIVERY_POLL_S": "0.1",
            "ENGINE_LEASE_S": "3",
            "STATUS_EDIT_INTERVAL_S": "0",
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def chat(tmp_path: Path, text: str, timeout: float = 120, **extra: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "songbot", "chat"],
        input=text,
        capture_output=True,
        text=True,
        env=env_for(tmp_path, **extra),
        cwd=tmp_path,
        timeout=timeout,
        check=True,
    )
    return done.stdout


def results(output: str) -> list[tuple[int, int, Path]]:
    return [(int(song), int(seed), Path(path)) for song, seed, path in RESULT.findall(output)]


def test_song_then_exact_reroll(tmp_path):
    out = chat(tmp_path, "/song lo-fi rain at night duration=10 seed=5 bpm=90 key=Am\n")
    assert "queued" in out and "not ACE-Step" in out
    [(song_id, seed, path)] = results(out)
    assert seed == 5 and path.is_absolute() and path.exists()
    first, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == 48_000 and first.shape == (480_000, 2)

    again = chat(tmp_path, f"/reroll {song_id} {seed}\n/reroll {song_id}\n")
    rerolls = results(again)
    assert len(rerolls) == 2
    (same_id, same_seed, same_path), (_, other_seed, other_path) = sorted(rerolls)
    assert same_seed == 5 and same_id != song_id
    same, _ = sf.read(str(same_path), dtype="float32", always_2d=True)
    assert np.array_equal(first, same), "the same seed must give the same decoded samples"
    assert audio.read_tags(same_path)["song_id"] == str(same_id)
    other, _ = sf.read(str(other_path), dtype="float32", always_2d=True)
    assert other_seed != 5 and other.shape == first.shape and not np.array_equal(first, other)


def test_lyrics_history_and_bad_input(tmp_path):
    png = tmp_path / "cat.mp3"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500))
    out = chat(
        tmp_path,
        "\n".join(
            [
                "/song sad folk song about trains duration=10 seed=9",
                "[verse]",
                "the morning train is late",
                "",
                "/song",
                "/song rain duration=5000",
                f"/cover {png} jazz",
                "/cover /nowhere/song.mp3",
                "/frobnicate",
                "",
                "hello",
                "",
            ]
        ),
    )
    assert "Tell me what the song should be about" in out
    assert "duration must be between 10 and 240 seconds" in out
    assert "not audio" in out
    assert "I can't find the file /nowhere/song.mp3" in out
    assert "I don't know /frobnicate" in out
    assert "Commands start with /" in out
    assert "Traceback" not in out
    [(song_id, _, _)] = results(out)
    history = chat(tmp_path, f"/history\n/lyrics {song_id}\n/queue\n")
    assert f"#{song_id} · Sad Folk Song About" in history
    assert "the morning train is late" in history
    assert "You have no songs in the queue" in history


def test_cover_of_an_uploaded_file(tmp_path):
    source = tmp_path / "take.wav"
    t = np.arange(16000 * 12) / 16000
    sf.write(str(source), 0.4 * np.sin(2 * np.pi * 330 * t), 16000)
    out = chat(tmp_path, f"/cover {source} bossa nova strength=0.7 seed=3\n")
    [(song_id, seed, path)] = results(out)
    decoded, rate = sf.read(str(path), always_2d=True)
    assert seed == 3 and rate == 48_000 and abs(decoded.shape[0] / rate - 12.0) < 0.05
    # A re-roll of a cover with its seed is the same cover (the source travels with the re-roll).
    [(_, _, again)] = results(chat(tmp_path, f"/reroll {song_id} {seed}\n"))
    assert np.array_equal(sf.read(str(again), always_2d=True)[0], decoded)


def test_engine_killed_mid_job_is_reaped_rerun_and_delivered_once(tmp_path):
    env = env_for(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "songbot", "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        process.stdin.write("/song a long drone duration=120 seed=8\n\n")  # a blank line ends the command
        process.stdin.flush()
        queue = Queue(make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}"))
        owner = wait_for_progress(queue, job_id=1)
        engine_pid = int(owner.rsplit(":", 2)[1])  # host:device:pid:random (the device may hold a colon)
        os.kill(engine_pid, signal.SIGKILL)
        out, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    job = queue.get(1)
    assert job.status == "succeeded" and job.attempts == 2
    log = (tmp_path / "data" / "songbot.log").read_text()
    assert "engine exited; restarting" in log
    assert "reaped job" in log
    assert err == "", "the log goes to data/songbot.log, not to the terminal"
    assert out.count("⚠️ The engine stopped (exit status -9) and is being restarted") == 1
    assert len(results(out)) == 1 and out.count("✅ #1 ") == 1


def wait_for_progress(queue: Queue, job_id: int, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            job = queue.get(job_id)
        except OperationalError:  # the chat has not created the tables yet
            job = None
        if job is not None and job.status == "running" and job.progress > 0 and job.lease_owner:
            return job.lease_owner
        time.sleep(0.02)
    raise AssertionError("the job never started running")


def read_until(fd: int, marker: str, timeout_s: float = 60) -> str:
    """What the process wrote to `fd` up to and including `marker`."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while marker.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            raise AssertionError(f"no {marker!r} in {seen.decode(errors='replace')!r}")
        seen += chunk
    return seen.decode()


def start_in_a_terminal(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """`songbot chat` with a pseudo-terminal as stdin (so it is interactive); returns it and the pty's master."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "songbot", "chat"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(tmp_path),
        cwd=tmp_path,
    )
    os.close(slave)
    return process, master


def engine_pids(tmp_path: Path) -> list[int]:
    log = (tmp_path / "data" / "songbot.log").read_text()
    return [int(pid) for pid in re.findall(r"engine started pid=(\d+)", log)]


def test_in_a_terminal_a_welcome_line_a_prompt_and_quit(tmp_path):
    process, master = start_in_a_terminal(tmp_path)
    try:
        shown = read_until(process.stdout.fileno(), "> ")
        assert (
            shown == "🎵 songbot chat: type /help for the commands, /quit or Ctrl-C to leave. Songs by the sketch "
            "synthesizer (no model weights), simple stand-ins for ACE-Step's songs. Log: "
            f"{tmp_path / 'data' / 'songbot.log'}\n> "
        )
        os.write(master, b"/quit\n")
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == b""
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()


def test_ctrl_c_leaves_within_a_second_or_two_without_enter(tmp_path):
    process, master = start_in_a_terminal(tmp_path)
    try:
        read_until(process.stdout.fileno(), "> ")
        time.sleep(1.0)  # the engine child is up (or starting): it is stopped too
        os.kill(process.pid, signal.SIGINT)
        sent = time.monotonic()
        code = process.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    assert code == 0  # a deliberate stop: `make run` must not report an error
    assert took < 2.0, f"Ctrl-C took {took:.1f} s"
    assert process.stderr.read() == b""
    for pid in engine_pids(tmp_path):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_ctrl_c_with_piped_input_still_open(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "songbot", "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(tmp_path),
        cwd=tmp_path,
    )
    try:
        process.stdin.write(b"/history\n\n")  # piped: a blank line ends the command
        process.stdin.flush()
        read_until(process.stdout.fileno(), "You have no songs yet")
        os.kill(process.pid, signal.SIGINT)
        sent = time.monotonic()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - sent < 2.0
    finally:
        if process.poll() is None:
            process.kill()


def test_an_engine_that_cannot_start_is_one_sentence_before_the_chat(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "songbot", "chat"],
        input="/history\n",
        capture_output=True,
        text=True,
        env=env_for(tmp_path, ENGINE_BACKEND="acestep"),
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"The model directory {tmp_path / 'no-models'} is incomplete")
    assert len(done.stderr.strip().splitlines()) == 1
