"""Runs the engine as a child process and restarts it, with back-off, when it dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from storage.db import make_engine
from storage.private import private_dir, private_file
from storage.queue.engines import EngineRoster
from storage.queue.jobs import Queue

log = logging.getLogger("songbot.supervisor")

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0
STOP_GRACE_S = 20.0


class EngineSupervisor:
    """Keeps one `songbot engine` child alive until `stop()`."""

    def __init__(
        self,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        output: Path | None = None,
        on_exit: Callable[[int], None] | None = None,
        on_killed: Callable[[int], None] | None = None,
    ) -> None:
        """Remember how to start the child; `start()` starts it.

        Args:
            command: The child's command line (default: this Python running `songbot engine`).
            env: Its environment (default: this process's).
            output: A log file for the child's stdout and stderr (default: this process's); then its
                stdin is closed and progress bars are turned off.
            on_exit: Called with the exit status when the child dies unasked (before it is restarted).
            on_killed: Called (in a thread) with the child's pid after `stop()` had to kill it: the jobs
                it still leased can be given back then (see `lease_releaser`).
        """
        self.command = command or [sys.executable, "-m", "songbot", "engine"]
        self.env = env
        self.output = output
        self.on_exit = on_exit
        self.on_killed = on_killed
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start supervising in the background."""
        self._task = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        backoff = BACKOFF_START_S
        while not self._stopping.is_set():
            started = asyncio.get_running_loop().time()
            self.process = await self._spawn()
            log.info("engine started", extra={"pid": self.process.pid})
            if self._stopping.is_set():  # stop() came while the child was being started
                self.process.terminate()
            code = await self.process.wait()
            if self._stopping.is_set():
                break
            ran_s = asyncio.get_running_loop().time() - started
            backoff = BACKOFF_START_S if ran_s > HEALTHY_AFTER_S else min(backoff * 2, BACKOFF_MAX_S)
            self.restarts += 1
            log.warning("engine exited; restarting", extra={"code": code, "in_s": backoff})
            if self.on_exit is not None:
                self.on_exit(code)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)

    async def _spawn(self) -> asyncio.subprocess.Process:
        env = dict(self.env or os.environ)
        if self.output is None:
            return await asyncio.create_subprocess_exec(*self.command, env=env)
        env.setdefault("TQDM_DISABLE", "1")
        env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        private_dir(self.output.parent)
        with private_file(self.output).open("ab") as log_file:
            return await asyncio.create_subprocess_exec(
                *self.command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file
            )

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the child (it releases its jobs), wait up to `grace_s`, and kill it if it is still there.

        A killed child's encode processes end with it (`engine.encode`); its jobs are given back through
        `on_killed`, so the next start runs them at once rather than after their lease.
        """
        self._stopping.set()
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=grace_s)
            except TimeoutError:
                log.warning("engine did not stop in time; killing it", extra={"pid": process.pid, "grace_s": grace_s})
                process.kill()
                await process.wait()
                if self.on_killed is not None:
                    await asyncio.to_thread(self.on_killed, process.pid)
        if self._task is not None:
            await self._task


def lease_releaser(db_url: str) -> Callable[[int], None]:
    """What gives back the jobs of a killed engine child: found by its host and pid in the engines table."""

    def release(pid: int) -> None:
        db = make_engine(db_url)
        try:
            roster, queue = EngineRoster(db), Queue(db)
            for owner in roster.owners_of(socket.gethostname(), pid):
                log.info("released a killed engine's jobs", extra={"pid": pid, "jobs": queue.release_owned(owner)})
                roster.leave(owner)
        except Exception as error:  # noqa: BLE001 - their leases run out and the reaper requeues them
            log.warning("could not release a killed engine's jobs", extra={"error": type(error).__name__})
        finally:
            db.dispose()

    return release
