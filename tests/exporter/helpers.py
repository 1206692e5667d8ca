"""Start a real exporter process and run a socket proxy to the engine."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from pathlib import Path

from tests.exporter.fakes import parse_exposition
from tests.services import Server, ServerFactory, free_port, http_get

DOCKER_SOCKET = "/var/run/docker.sock"


def start_exporter(
    servers: ServerFactory, *flags: str, env: dict[str, str] | None = None
) -> Server:
    """Start ``python -m exporter`` on a free loopback port."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "exporter",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=debug",
        *flags,
    ]
    return servers.start("exporter", argv, port, ready_path="/healthz", env=env)


def scrape(
    server: Server, path: str = "/metrics"
) -> dict[tuple[str, frozenset], float]:
    """GET the metrics of an exporter and parse them."""
    status, body = http_get(server.url + path)
    assert status == 200, body
    return parse_exposition(body)


class SocketProxy:
    """Forward a Unix socket of the test's own to the Docker engine's socket.

    Stopping the proxy closes every connection. To the exporter this looks
    like the engine going away, while the engine other tests share keeps
    running.
    """

    def __init__(self, path: Path, target: str = DOCKER_SOCKET) -> None:
        self.path = path
        self.target = target
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
