"""No test reaches beyond this machine: connects and name lookups to anything but loopback raise.

`tests/conftest.py` applies `refuse_non_loopback` to every test. The guard sits on the socket
module, so the client libraries (httpx, aiohttp, psycopg, asyncio) are covered too; processes a
test starts are not (they get loopback URLs from the test).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class ExternalNetworkRefused(RuntimeError):
    """A test tried to reach a host other than loopback (not an OSError, so no client retries it)."""


def is_loopback(host: object) -> bool:
    """Whether `host` (a name, an address, or None/0.0.0.0/:: for "this host") stays on this machine."""
    if host is None or host in ("", b""):
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified  # 0.0.0.0 and :: (binding to "any") are this host


def check_address(family: int, address: Any) -> None:
    """Raise unless a socket address is local (a Unix socket or a loopback IP)."""
    if family == getattr(socket, "AF_UNIX", None) or not isinstance(address, tuple):
        return
    if not is_loopback(address[0]):
        raise ExternalNetworkRefused(f"tests may only connect to loopback, not {address[0]!r}")


def refuse_non_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patch the socket module so that only loopback hosts can be looked up or connected to."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            raise ExternalNetworkRefused(f"tests may only look up loopback hosts, not {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        check_address(self.family, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check_address(self.family, address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
