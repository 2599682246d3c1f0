"""Helpers for tests that start processes with monitoring ports: free loopback ports, /readyz, waiting."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports (ENGINE_METRICS_PORT + i)."""
    for _ in range(100):
        first = free_port()
        probes: list[socket.socket] = []
        try:
            for offset in range(count):
                probes.append(socket.socket())
                probes[-1].bind(("127.0.0.1", first + offset))
            return first
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError("no run of free ports found")


def ready(port: int) -> bool:
    """Whether /readyz on the loopback port answers 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 20.0) -> object:
    """Poll `condition` until it returns something true; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found
