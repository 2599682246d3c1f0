"""The engine supervisor: the chat's engine writes to the log file, and stop() never hangs."""

import asyncio
import sys
import time

from songbot.supervisor import EngineSupervisor

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
