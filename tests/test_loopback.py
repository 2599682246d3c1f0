"""The autouse guard of tests/conftest.py: loopback works, anything else raises before leaving the host."""

import asyncio
import socket
import socketserver
import threading

import httpx
import pytest

from tests.loopback import ExternalNetworkRefused, is_loopback


@pytest.fixture
def echo_port():
    class Echo(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(self.request.recv(16))

    server = socketserver.TCPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", ["example.com", "api.telegram.org", "8.8.8.8", "2001:4860:4860::8888"])
def test_other_hosts_are_refused_by_every_path(host):
    with pytest.raises(ExternalNetworkRefused):
        socket.getaddrinfo(host, 443)
    with pytest.raises(ExternalNetworkRefused):
        socket.create_connection((host, 443), timeout=1)
    with pytest.raises(ExternalNetworkRefused):
        asyncio.run(asyncio.open_connection(host, 443))
    with pytest.raises(ExternalNetworkRefused):
        httpx.get(f"https://[{host}]/" if ":" in host else f"https://{host}/")


def test_a_raw_connect_to_an_address_is_refused():
    for family, address in ((socket.AF_INET, ("93.184.216.34", 80)), (socket.AF_INET6, ("2606:2800::1", 80, 0, 0))):
        with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(ExternalNetworkRefused):
            sock.connect(address)
        with socket.socket(family, socket.SOCK_STREAM) as sock, pytest.raises(ExternalNetworkRefused):
            sock.connect_ex(address)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_still_works(echo_port, host):
    with socket.create_connection((host, echo_port), timeout=5) as sock:
        sock.sendall(b"ping")
        assert sock.recv(16) == b"ping"

    async def ping():
        reader, writer = await asyncio.open_connection(host, echo_port)
        writer.write(b"pong")
        answer = await reader.read(16)
        writer.close()
        return answer

    assert asyncio.run(ping()) == b"pong"


def test_what_counts_as_loopback():
    local = [None, "", "localhost", "127.0.0.1", "127.8.9.1", "::1", b"127.0.0.1", "0.0.0.0", "::"]
    assert all(map(is_loopback, local))
    assert not any(map(is_loopback, ["10.0.0.1", "192.168.1.1", "100.64.0.1", "example.com", "localhost.evil.com"]))
