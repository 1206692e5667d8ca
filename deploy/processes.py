"""Child processes of the local stack: start, health checks, stop.

Each child runs in its own session, so a Ctrl-C in the terminal reaches only
the stack, which then stops the children in reverse order of start.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


# prctl(2) option that sends the child a signal when its parent dies.
PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when the stack process dies.

    Runs in the child between fork and exec. Without it, a stack killed
    with SIGKILL would leave its four children running, because each one
    is in its own session and no terminal signal reaches it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class StackProcessError(Exception):
    """A stack process could not start, became unhealthy or exited."""


@dataclass
class ProcessSpec:
    """How to run one part of the stack and how to tell that it is healthy."""

    name: str
    argv: Sequence[str]
    port: int
    health_path: str
    # Environment variables of the child, on top of the stack's own.
    env: Mapping[str, str] = field(default_factory=dict)
    # Where to change the port when it is taken.
    port_setting: str = ""
    # Headers of each health check, such as a login; called per check.
    health_headers: Callable[[], Mapping[str, str]] = dict

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def check_port_free(spec: ProcessSpec) -> None:
    """Raise StackProcessError when something already listens on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR, as the child binds, a port in TIME_WAIT would
        # look taken although the child could bind it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", spec.port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            hint = ""
            if spec.port_setting:
                hint = f" or set {spec.port_setting} to use another port"
            raise StackProcessError(
                f"port {spec.port} for {spec.name} on 127.0.0.1 is already in use; "
                f"stop the process that listens there{hint}"
            ) from None


def log_tail(path: Path, lines: int = 20) -> str:
    """Return the last lines of a log file, or a note when it is empty."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"({path} is empty)"


class StackProcess:
    """One running child, its log file and its health URL."""

    def __init__(self, spec: ProcessSpec, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            list(spec.argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **spec.env},
            start_new_session=True,
            preexec_fn=stop_with_parent,
        )
        logger.info(
            "started %s (pid %d), log %s", spec.name, self.process.pid, log_path
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def exited(self) -> int | None:
        """Return the exit status when the child has exited, else None."""
        return self.process.poll()

    def healthy(self) -> bool:
        """Tell whether the health URL returns status 200 right now."""
        request = urllib.request.Request(
            self.spec.url + self.spec.health_path,
            headers=dict(self.spec.health_headers()),
        )
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_healthy(self, timeout: float) -> None:
        """Wait until the child is healthy, or raise when it exits or times out."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            status = self.exited()
            if status is not None:
                raise StackProcessError(
                    f"{self.spec.name} exited with status {status} during start; "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise StackProcessError(
                    f"{self.spec.name} did not respond on "
                    f"{self.spec.url}{self.spec.health_path} within {timeout:g} s; "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def stop(self, grace_seconds: float = 10.0) -> int:
        """Send SIGTERM, then SIGKILL after the grace period; return the status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s (pid %d) ignored SIGTERM for %g s; sending SIGKILL",
                    self.spec.name,
                    self.pid,
                    grace_seconds,
                )
                self.process.kill()
                self.process.wait()
        self._log.close()
        logger.info(
            "stopped %s (pid %d), status %d",
            self.spec.name,
            self.pid,
            self.process.returncode,
        )
        return self.process.returncode
