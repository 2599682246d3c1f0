"""The engine process itself: `python -m songbot engine`, stopped with SIGTERM mid-job."""

import os
import signal
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from bot.core.parser import SongRequest
from bot.core.service import SongService
from engine.backends import choose_backend
from engine.main import StopSignal
from storage.contract.errors import ModelsMissing
from storage.contract.types import QUEUED, DeliveryTarget, UserRef
from tests.bot.console.test_console_e2e import env_for, wait_for_progress
from tests.helpers import make_settings


async def test_sigterm_releases_the_running_job(tmp_path):
    settings = make_settings(tmp_path)
    service = SongService.from_settings(settings)
    job = await service.submit_song(
        UserRef("console", "me"), SongRequest("long drone", duration_s=120), DeliveryTarget("console", "c")
    )
    engine = subprocess.Popen(
        [sys.executable, "-m", "songbot", "engine"],
        env=env_for(tmp_path),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_progress(service.queue, job.id)
        engine.send_signal(signal.SIGTERM)
        _, err = engine.communicate(timeout=30)
    finally:
        if engine.poll() is None:
            engine.kill()
    assert engine.returncode == 0
    assert "released jobs" in err and "engine stopped" in err
    released = service.queue.get(job.id)
    assert released.status == QUEUED and released.attempts == 0 and released.lease_owner is None


def test_backend_choice(tmp_path):
    empty = tmp_path / "models"
    assert choose_backend("sketch", empty) == "sketch"
    assert choose_backend("auto", empty) == "sketch"
    empty.mkdir()
    assert choose_backend("auto", empty) == "sketch"
    with pytest.raises(ModelsMissing, match=r"missing.*songbot models download"):
        choose_backend("acestep", empty)
    (empty / "vae").mkdir()
    with pytest.raises(ModelsMissing, match="acestep-v15-turbo"):
        choose_backend("auto", empty)  # a partial set refuses to start


def test_engine_refuses_to_start_on_a_partial_set(tmp_path):
    (tmp_path / "models" / "vae").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-m", "songbot", "engine"],
        capture_output=True,
        text=True,
        env=env_for(tmp_path, ENGINE_BACKEND="auto", MODEL_DIR=str(tmp_path / "models")),
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert "missing" in done.stderr and "songbot models download" in done.stderr
    assert "Traceback" not in done.stderr


class StoppableWorker:
    """What `StopSignal` touches of a worker: `stop()` and `encoder.abandon`."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.encoder = SimpleNamespace(abandon=lambda: None)

    def stop(self) -> None:
        self.stopped.set()


def test_ctrl_c_then_sigterm_inside_a_held_lock_still_stop_the_engine():
    # Ctrl-C reaches the engine's group and the supervisor's SIGTERM follows: a handler runs in the main
    # thread between any two bytecodes, inside whatever lock that thread holds, even inside a handler that
    # is setting the very `Event` it would set. The handler takes no lock, so both return and the stop comes.
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    stop, worker = StopSignal(encodes_s=3600), StoppableWorker()
    try:
        stop.install().attach(worker)
        with stop.requested._cond:  # as if a handler had been cut short inside `requested.set()`
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)  # both handlers have run here, in this thread, and returned
            assert not stop.requested.is_set()  # the listener waits for this lock: nothing is set under it
        assert stop.requested.wait(timeout=60) and worker.stopped.wait(timeout=60)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        if stop._deadline is not None:  # the one deadline both signals share
            stop._deadline.cancel()
