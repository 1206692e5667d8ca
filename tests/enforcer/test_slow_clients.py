"""Connections that never finish their request leave the webhook served."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.enforcer.harness import make_alert, make_notification
from tests.enforcer.test_server import post, start_enforcer
from tests.services import Server, ServerFactory

pytestmark = pytest.mark.docker

# A request line and headers without the blank line that ends them.
PARTIAL_HEADERS = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"


@contextlib.contextmanager
def slow_connections(server: Server, count: int, data: bytes) -> Iterator[None]:
    """Open ``count`` connections that send ``data`` and then stall."""
    sockets = []
    try:
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", server.port))
            connection.sendall(data)
            sockets.append(connection)
        yield
    finally:
        for connection in sockets:
            connection.close()


@pytest.mark.parametrize(
    ("count", "data"),
    [
        (12, PARTIAL_HEADERS),
        (12, b"POST /webh"),
        (200, PARTIAL_HEADERS),
    ],
)
def test_webhook_served_beside_stalled_clients(
    servers: ServerFactory, tmp_path: Path, count: int, data: bytes
) -> None:
    server = start_enforcer(servers, tmp_path)
    missing_id = "e" * 64
    with slow_connections(server, count, data):
        status, body = post(server, make_notification(make_alert(missing_id)))
    server.stop()
    assert status == 200
    assert body["decisions"][0]["result"] == "not_found"
    # A stalled client is closed quietly, so it cannot flood the log.
    assert "Traceback" not in server.log()


def first_line_of_reply(server: Server, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(request)
        return client.recv(1024).split(b"\r\n", 1)[0]


def test_long_request_line_rejected(servers: ServerFactory, tmp_path: Path) -> None:
    server = start_enforcer(servers, tmp_path)
    line = b"POST /webhook?" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert b" 414 " in first_line_of_reply(server, line)


def test_large_header_rejected(servers: ServerFactory, tmp_path: Path) -> None:
    server = start_enforcer(servers, tmp_path)
    request = b"POST /webhook HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
    assert b" 431 " in first_line_of_reply(server, request)
