"""Start real servers (Prometheus, Alertmanager, Warden's own) for tests.

Every server listens on 127.0.0.1 on a free port and is stopped when the
test that started it ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip the test when ``condition`` is false, or fail it under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true turns this skip into a failure)")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Return the path of an executable, skipping or failing when missing."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed; run deploy/setup.sh")
    assert path is not None
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str = "condition",
) -> Any:
    """Poll ``predicate`` until it returns a truthy value, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET a URL on loopback and return the status code and body."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Server:
    """A child process that serves HTTP on 127.0.0.1:port."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        log_path: Path,
        ready_path: str = "/",
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self._wait_ready(ready_path)

    def _wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with status {self.process.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            try:
                with urllib.request.urlopen(self.url + path, timeout=1):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        self.stop()
        raise AssertionError(
            f"{self.name} did not respond at {self.url}{path} within {timeout} s:\n"
            + self.log_path.read_text(errors="replace")[-3000:]
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Stop the process and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class ServerFactory:
    """Start servers for one test and stop them all at its end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.servers: list[Server] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        ready_path: str = "/",
        env: dict[str, str] | None = None,
    ) -> Server:
        server = Server(
            name,
            argv,
            port,
            self.tmp_path / f"{name}-{port}.log",
            ready_path=ready_path,
            env=env,
        )
        self.servers.append(server)
        return server

    def prometheus(
        self, config: dict[str, Any], rule_files: Sequence[Path] = ()
    ) -> Server:
        """Start Prometheus with ``config``; ``rule_files`` are copied beside it."""
        binary = require_binary("prometheus")
        port = free_port()
        folder = self.tmp_path / f"prometheus-{port}"
        folder.mkdir()
        names = []
        for rule_file in rule_files:
            shutil.copy(rule_file, folder / rule_file.name)
            names.append(str(folder / rule_file.name))
        config = {**config, "rule_files": names} if names else config
        config_path = folder / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ]
        return self.start("prometheus", argv, port, ready_path="/-/ready")

    def alertmanager(self, config: dict[str, Any]) -> Server:
        """Start a single Alertmanager (no cluster) with ``config``."""
        binary = require_binary("prometheus-alertmanager")
        port = free_port()
        folder = self.tmp_path / f"alertmanager-{port}"
        folder.mkdir()
        config_path = folder / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config))
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ]
        return self.start("alertmanager", argv, port, ready_path="/-/ready")

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            server.stop()
