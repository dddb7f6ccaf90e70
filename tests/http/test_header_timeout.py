"""A connection must send a request's headers within `server.header_timeout_s`: one that sends
nothing, or trickles its headers, is closed, and its descriptor reclaimed; requests that send
their headers in time are served as before."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Gateway, start_gateway


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    gateway = start_gateway(
        tmp_path,
        {
            "server": {"header_timeout_s": 1},
            "models": [{"name": "m", "provider": "openai", "base_url": "http://127.0.0.1:9/v1"}],
        },
    )
    yield gateway
    gateway.stop()


def connect(gw: Gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(gw.base_url.rsplit(":", 1)[1])))
    sock.settimeout(20)  # a bound for the test, far past the header timeout
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_connection_that_sends_nothing_is_closed(gw: Gateway) -> None:
    with connect(gw) as sock:
        assert closed_by_server(sock)


def test_headers_sent_a_little_at_a_time_are_cut_off(gw: Gateway) -> None:
    with connect(gw) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            sock.settimeout(0.5)
            try:
                if sock.recv(1024) == b"":
                    break
            except TimeoutError:
                pass
        sock.settimeout(20)
        assert closed_by_server(sock)


def test_a_kept_alive_connection_still_serves_requests(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.base_url) as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
