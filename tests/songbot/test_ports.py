"""`songbot chat` opens both metrics ports: its own and, with ENGINE_DEVICES, one per engine child (port + i)."""

import subprocess
import sys

from tests.bot.console.test_console_e2e import env_for
from tests.probes import free_port, free_ports, ready, wait_for


def test_chat_with_two_engines_serves_three_ready_ports_and_status_lists_both(tmp_path):
    bot_port, engine_port = free_port(), free_ports(2)  # the second engine takes the next port
    env = env_for(
        tmp_path,
        BOT_METRICS_PORT=str(bot_port),
        ENGINE_METRICS_PORT=str(engine_port),
        ENGINE_DEVICES="cpu:0,cpu:1",  # the sketch backend runs anywhere; the devices only name the engines
        ENGINE_ENCODE_PROCESSES="0",
    )
    chat = subprocess.Popen(
        [sys.executable, "-m", "songbot", "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        for port in (bot_port, engine_port, engine_port + 1):
            wait_for(lambda p=port: ready(p), f"/readyz on {port}", timeout_s=60)
        status = subprocess.run(
            [sys.executable, "-m", "songbot", "status"], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        engines = [line.split() for line in status.stdout.splitlines() if line.startswith("  up ")]
        assert sorted(fields[2] for fields in engines) == ["cpu:0", "cpu:1"], status.stdout
        chat.stdin.close()  # nothing asked: the chat leaves, and stops its engines
        assert chat.wait(timeout=60) == 0
        wait_for(lambda: not ready(engine_port) and not ready(engine_port + 1), "the engines to stop")
    finally:
        if chat.poll() is None:
            chat.kill()
            chat.wait()
