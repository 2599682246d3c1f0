"""The engine supervisor: the chat's engine writes to the log file, and stop() never hangs."""

import asyncio
import socket
import sys
import time
from datetime import datetime

from migrations import upgrade
from songbot.engines import EngineGroup, engine_environments
from songbot.supervisor import EngineSupervisor, lease_releaser
from storage.contract.spec import JobSpec
from storage.contract.types import QUEUED, UserRef
from storage.db import make_engine
from storage.queue.accounts import Accounts
from storage.queue.engines import EngineIdentity, EngineRoster
from storage.queue.jobs import Queue
from tests.helpers import make_settings

CHILD = """
import os, sys, time, warnings
print("stdout line", flush=True)
print("stderr line", file=sys.stderr, flush=True)
warnings.warn("a library notice")
print("progress bars off:", os.environ.get("TQDM_DISABLE"), os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"), flush=True)
print("stdin empty:", sys.stdin.read() == "", flush=True)
time.sleep(60)
"""


async def test_the_childs_output_goes_to_the_log_file(tmp_path, capfd):
    log = tmp_path / "data" / "songbot.log"
    supervisor = EngineSupervisor([sys.executable, "-c", CHILD], output=log)
    supervisor.start()
    for _ in range(500):
        if log.exists() and "stdin empty" in log.read_text():
            break
        await asyncio.sleep(0.02)
    started = time.monotonic()
    await supervisor.stop(grace_s=5)
    assert time.monotonic() - started < 3, "SIGTERM ends a child that does not handle it"
    text = log.read_text()
    for line in ("stdout line", "stderr line", "a library notice", "progress bars off: 1 1", "stdin empty: True"):
        assert line in text
    out, err = capfd.readouterr()
    assert "line" not in out + err and "notice" not in out + err


async def test_a_stop_during_the_start_ends_the_new_child(tmp_path):
    supervisor = EngineSupervisor([sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start()
    await asyncio.sleep(0)  # the child is being spawned
    await asyncio.wait_for(supervisor.stop(grace_s=5), timeout=10)
    assert supervisor.process is not None and supervisor.process.returncode is not None


def test_one_engine_per_device_each_with_its_metrics_port(tmp_path):
    settings = make_settings(tmp_path, engine_devices="cuda:0,cuda:1", engine_metrics_port=9200)
    environments = engine_environments(settings, {"ENGINE_DEVICES": "cuda:0,cuda:1", "PATH": "/bin"})
    assert [(env["ENGINE_DEVICE"], env["ENGINE_METRICS_PORT"]) for env in environments] == [
        ("cuda:0", "9200"),
        ("cuda:1", "9201"),
    ]
    assert all("ENGINE_DEVICES" not in env and env["PATH"] == "/bin" for env in environments)


def test_without_devices_one_engine_keeps_its_settings(tmp_path):
    [env] = engine_environments(make_settings(tmp_path), {"ENGINE_DEVICE": "cuda:2"})
    assert env == {"ENGINE_DEVICE": "cuda:2"}


async def test_the_group_supervises_every_engine(tmp_path):
    settings = make_settings(tmp_path, engine_devices="cpu,meta")
    report = (
        "import os, pathlib, time; pathlib.Path(os.environ['OUT'], os.environ['ENGINE_DEVICE']).touch(); time.sleep(60)"
    )
    group = EngineGroup(
        [
            EngineSupervisor([sys.executable, "-c", report], env=env)
            for env in engine_environments(settings, {"OUT": str(tmp_path)})
        ]
    )
    group.start()
    for _ in range(500):
        if (tmp_path / "cpu").exists() and (tmp_path / "meta").exists():
            break
        await asyncio.sleep(0.02)
    await asyncio.wait_for(group.stop(grace_s=5), timeout=10)
    assert (tmp_path / "cpu").exists() and (tmp_path / "meta").exists()
    assert all(s.process is not None and s.process.returncode is not None for s in group.supervisors)


STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""


async def test_a_child_that_does_not_stop_in_time_is_killed_and_its_jobs_given_back(tmp_path):
    settings = make_settings(tmp_path)
    db = make_engine(settings.db_url)
    upgrade(db)
    now = datetime(2026, 12, 6, 12, 0, 0)
    uid = Accounts(db).ensure(UserRef("console", "me", "me"), now).id
    queue = Queue(db)
    job = queue.submit(uid, "song", JobSpec(caption="rain", duration_s=10), 1, now)
    killed: list[int] = []
    release = lease_releaser(settings.db_url)

    def on_killed(pid: int) -> None:
        killed.append(pid)
        release(pid)

    log = tmp_path / "engine.log"
    supervisor = EngineSupervisor([sys.executable, "-c", STUBBORN], output=log, on_killed=on_killed)
    supervisor.start()
    while not (log.exists() and "ready" in log.read_text()):
        await asyncio.sleep(0.02)
    assert supervisor.process is not None
    pid = supervisor.process.pid
    # What the child would have done as an engine: say it is up, and lease the job.
    owner = f"{socket.gethostname()}:cpu:{pid}:abcdef"
    EngineRoster(db).beat(EngineIdentity(owner, socket.gethostname(), "cpu", "sketch", pid), now)
    [claimed] = queue.claim(owner, 1, now, 30)
    other = queue.submit(uid, "song", JobSpec(caption="sun", duration_s=10), 2, now)
    [theirs] = queue.claim("another-engine", 1, now, 30)

    await supervisor.stop(grace_s=0.5)
    assert killed == [pid] and supervisor.process.returncode is not None
    back = queue.get(claimed.id)
    assert claimed.id == job.id and (back.status, back.lease_owner, back.attempts) == (QUEUED, None, 0)
    assert theirs.id == other.id and queue.get(other.id).lease_owner == "another-engine"
