"""Scale-out: one bot and two engine processes (sketch backend) on PostgreSQL, blobs in an S3-compatible store.

Each process has its own data folder, so uploads and tracks can only travel through the object
store (moto's server on loopback). The bot is the console chat (`songbot bot` with no tokens),
fed through a pipe. A song is claimed by one engine, which is SIGKILLed while it holds the job;
the other engine takes the job over once its short lease runs out, and then makes a cover of a
file uploaded through the bot. Each result is posted once.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import Engine, select

from storage.models import deliveries_table, jobs_table, tracks_table
from tests.helpers import REPO, postgres_schema, postgres_url
from tests.probes import free_port, ready, wait_for
from tests.s3server import S3Server, s3_server

PG_URL = postgres_url()
pytestmark = pytest.mark.skipif(
    PG_URL is None,
    reason="no PostgreSQL answered at TEST_DATABASE_URL: the scale-out test needs one shared by several processes",
)
LEASE_S = "2"  # short, so the surviving engine takes over the killed one's job quickly


class Process:
    """`python -m songbot <command>` with its own data folder, configured through the environment only."""

    def __init__(self, command: str, workdir: Path, env: dict[str, str], port_name: str, stdin: bool = False) -> None:
        workdir.mkdir(parents=True)
        self.workdir = workdir
        self.port = free_port()
        env = {**env, "SONGBOT_DATA_DIR": str(workdir / "data"), port_name: str(self.port)}
        self.lines: list[str] = []
        self.log = (workdir / "stderr.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "songbot", command],
            cwd=workdir,  # no .env there
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def say(self, command: str) -> None:
        """One chat command; the empty line after it sends it (piped, the next lines could be lyrics)."""
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def environment(db: Engine, s3: S3Server, models: Path) -> dict[str, str]:
    inherited = ("TELEGRAM_", "DISCORD_", "DATABASE_", "BLOB_", "ENGINE_", "AWS_", "SONGBOT_")
    return {
        **{name: value for name, value in os.environ.items() if not name.startswith(inherited)},
        **s3.env(prefix="community"),
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": db.url.render_as_string(hide_password=False),
        "MODEL_DIR": str(models),
        "ENGINE_BACKEND": "sketch",
        "ENGINE_LEASE_S": LEASE_S,
        "ENGINE_POLL_S": "0.1",
        "ENGINE_MAX_BATCH": "1",
        "ENGINE_ENCODE_PROCESSES": "0",
        "DELIVERY_POLL_S": "0.1",
        "STATUS_EDIT_INTERVAL_S": "0",
        "LOG_LEVEL": "INFO",
    }


def owner_pid(owner: str) -> int:
    """The pid in an owner id `host:device:pid:random` (the device may hold a colon itself)."""
    return int(owner.rsplit(":", 2)[1])


def running_job(db: Engine) -> tuple[int, str] | None:
    with db.connect() as conn:
        row = conn.execute(
            select(jobs_table.c.id, jobs_table.c.lease_owner).where(jobs_table.c.status == "running")
        ).first()
    return (row.id, row.lease_owner) if row is not None else None


def write_recording(path: Path, seconds: float = 12.0) -> None:
    rate = 48000
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) / 1.5
    sf.write(path, np.stack([tone, tone], axis=1).astype(np.float32), rate)


def test_two_engines_one_killed_share_postgres_and_the_object_store(tmp_path):
    with postgres_schema(PG_URL) as db, s3_server() as s3:
        env = environment(db, s3, tmp_path / "no-models")
        engines = [Process("engine", tmp_path / f"engine-{n}", env, "ENGINE_METRICS_PORT") for n in (1, 2)]
        bot = Process("bot", tmp_path / "bot", env, "BOT_METRICS_PORT", stdin=True)
        processes = [*engines, bot]
        try:
            for process in processes:
                wait_for(lambda p=process: ready(p.port) or p.process.poll() is not None, "/readyz")
                assert process.process.poll() is None, (process.workdir / "stderr.log").read_text()[-2000:]

            bot.say("/song night drive synthwave duration=30")
            song_id, owner = wait_for(lambda: running_job(db), "an engine to claim the song")
            [victim] = [e for e in engines if e.process.pid == owner_pid(owner)]
            [survivor] = [e for e in engines if e is not victim]
            victim.process.send_signal(signal.SIGKILL)  # mid-job: no cleanup, the lease just runs out
            assert victim.process.wait(timeout=10) == -signal.SIGKILL

            recording = tmp_path / "take.wav"
            write_recording(recording)
            bot.say(f"/cover {recording} bossa nova")
            bot.process.stdin.close()  # piped chat: it leaves once both results are posted
            assert bot.process.wait(timeout=90) == 0, (bot.workdir / "stderr.log").read_text()[-2000:]

            with db.connect() as conn:
                jobs = {row.id: row for row in conn.execute(select(jobs_table)).all()}
                tracks = {row.job_id: row for row in conn.execute(select(tracks_table)).all()}
                deliveries = conn.execute(select(deliveries_table.c.job_id, deliveries_table.c.state)).all()
            [cover_id] = [job_id for job_id in jobs if job_id != song_id]
            assert jobs[song_id].status == jobs[cover_id].status == "succeeded"
            assert jobs[song_id].attempts == 2  # the killed engine's attempt, then the survivor's
            assert tracks[song_id].blob_path.endswith(f"{song_id}-2.mp3")
            assert sorted(deliveries) == sorted([(song_id, "done"), (cover_id, "done")])

            posted = [line for line in bot.lines if line.startswith("✅ #")]
            assert sorted(line.split()[1] for line in posted) == sorted([f"#{song_id}", f"#{cover_id}"]), bot.lines
            for line in posted:  # each result is a local copy the bot downloaded from the store
                job_id = int(line.split()[1][1:])
                mp3 = Path(line.split()[-1])
                assert mp3.is_relative_to(bot.workdir) and mp3.is_file()
                assert hashlib.sha256(mp3.read_bytes()).hexdigest() == tracks[job_id].sha256

            keys = s3.object_keys()
            source = jobs[cover_id].source_blob
            assert source.startswith("uploads/") and f"community/{source}" in keys  # uploaded by the bot
            for job_id in (song_id, cover_id):
                assert f"community/{tracks[job_id].blob_path}" in keys  # written by the surviving engine
            for process in processes:  # no process kept a blob in its own folder
                assert not (process.workdir / "data" / "blobs").exists()
            assert survivor.process.poll() is None and ready(survivor.port)
        finally:
            for process in processes:
                process.stop()
