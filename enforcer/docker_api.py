"""Every Docker call of the enforcer, behind one small interface.

Only a validated full container ID ever reaches Docker: no name, prefix,
filter or label value from an alert is passed to the engine.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions

from enforcer.payload import is_go_zero_time, parse_rfc3339
from exporter.cgroup import CgroupReader
from exporter.model import ContainerGoneError, ContainerInfo

logger = logging.getLogger(__name__)

# Use with fullmatch: "$" would also accept a trailing newline.
FULL_ID = re.compile(r"[0-9a-f]{64}")
DOCKER_API_VERSION = "1.41"


class DockerError(Exception):
    """Base of the errors of Docker access."""


class DockerUnavailableError(DockerError):
    """The Docker API did not respond; nothing was decided or done."""


class ContainerNotFoundError(DockerError):
    """No container has this full ID (Docker returned 404)."""


class DockerActionError(DockerError):
    """Docker responded but rejected or failed the action."""


@dataclass(frozen=True)
class ContainerState:
    """Container facts that the decision checks read before acting."""

    id: str
    name: str
    image: str
    labels: dict[str, str]
    status: str
    running: bool
    paused: bool
    started_at: datetime | None
    pid: int


@dataclass(frozen=True)
class Usage:
    """Resource use of a container at decision time; None when unreadable."""

    cpu_seconds: float | None = None
    memory_bytes: int | None = None
    pids: int | None = None

    def as_record(self) -> dict[str, float | int | None]:
        return {
            "cpu_seconds": self.cpu_seconds,
            "memory_bytes": self.memory_bytes,
            "pids": self.pids,
        }


class DockerBackend(Protocol):
    """The Docker operations the decision checks use."""

    def ping(self) -> None: ...

    def inspect(self, container_id: str) -> ContainerState: ...

    def kill(self, container_id: str) -> None: ...

    def stop(self, container_id: str, grace_seconds: float) -> None: ...

    def pause(self, container_id: str) -> None: ...

    def usage(self, state: ContainerState) -> Usage: ...


def parse_docker_time(raw: str) -> datetime | None:
    """Parse Docker's RFC 3339 time; None for Go's zero time or bad text."""
    try:
        moment = parse_rfc3339(raw)
    except ValueError:
        return None
    return None if is_go_zero_time(moment) else moment


@dataclass
class EngineDocker:
    """DockerBackend on a real engine, through the SDK's low-level API."""

    base_url: str | None = None
    timeout_seconds: float = 10.0
    cgroup_root: Path = Path("/sys/fs/cgroup")
    proc_root: Path = Path("/proc")
    _client: Any = field(default=None, init=False, repr=False)
    _cgroups: CgroupReader = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A fixed API version makes the client connect on first use rather
        # than at construction, so the enforcer starts while Docker is down
        # and /readyz reports it. Every call used here exists in API 1.41
        # (Docker 20.10), which newer engines still serve.
        options = {"version": DOCKER_API_VERSION, "timeout": int(self.timeout_seconds)}
        if self.base_url:
            client = docker.DockerClient(base_url=self.base_url, **options)
        else:
            client = docker.DockerClient.from_env(**options)
        self._client = client.api
        self._cgroups = CgroupReader(self.cgroup_root, self.proc_root)

    def close(self) -> None:
        self._client.close()

    def ping(self) -> None:
        """Check that the engine responds.

        Raises:
            DockerUnavailableError: the engine did not respond.
        """
        self._call("ping", lambda: self._client.ping())

    def inspect(self, container_id: str) -> ContainerState:
        """Inspect a container by its full ID.

        Raises:
            ContainerNotFoundError: no container has this ID.
            DockerUnavailableError: the engine did not respond.
        """
        _check_full_id(container_id)
        data = self._call(
            "inspect", lambda: self._client.inspect_container(container_id)
        )
        # The engine resolves its argument as an ID, then a name, then an ID
        # prefix. A container may be named like another one's 64-hex ID, so a
        # reply about any other ID means the container asked for is gone.
        if data.get("Id") != container_id:
            raise ContainerNotFoundError(
                f"container {container_id} not found (the engine returned "
                f"{data.get('Id')!r}, which is a different container)"
            )
        state = data.get("State") or {}
        config = data.get("Config") or {}
        return ContainerState(
            id=container_id,
            name=str(data.get("Name") or "").lstrip("/"),
            image=str(config.get("Image") or ""),
            labels=dict(config.get("Labels") or {}),
            status=str(state.get("Status") or ""),
            running=bool(state.get("Running")),
            paused=bool(state.get("Paused")),
            started_at=parse_docker_time(str(state.get("StartedAt") or "")),
            pid=int(state.get("Pid") or 0),
        )

    def kill(self, container_id: str) -> None:
        """Send SIGKILL to the container's init process."""
        _check_full_id(container_id)
        self._call("kill", lambda: self._client.kill(container_id, signal="SIGKILL"))

    def stop(self, container_id: str, grace_seconds: float) -> None:
        """Send SIGTERM, then SIGKILL once ``grace_seconds`` have passed."""
        _check_full_id(container_id)
        # API 1.41 takes whole seconds; round up so the grace is never shorter.
        grace = max(0, math.ceil(grace_seconds))
        self._call("stop", lambda: self._client.stop(container_id, timeout=grace))

    def pause(self, container_id: str) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        _check_full_id(container_id)
        self._call("pause", lambda: self._client.pause(container_id))

    def usage(self, state: ContainerState) -> Usage:
        """Read CPU, memory working set and PIDs from the container's cgroup.

        Reads a few small files, so it costs microseconds, unlike the stats
        API (about a second per call). Fields are None when the files
        cannot be read, for example when the enforcer runs in a container
        without the host's /proc.
        """
        if state.pid <= 0:
            return Usage()
        info = ContainerInfo(
            id=state.id,
            name=state.name,
            image=state.image,
            image_id="",
            labels=state.labels,
            pid=state.pid,
            started_at=state.started_at.timestamp() if state.started_at else 0.0,
            paused=state.paused,
        )
        try:
            sample = self._cgroups.read(info)
        except (ContainerGoneError, OSError) as error:
            logger.debug("no usage of container %s: %s", state.id, error)
            return Usage()
        finally:
            # Each container is read once, at its decision; keep no cache.
            self._cgroups.forget(state.id)
        memory = sample.memory_working_set_bytes
        return Usage(
            cpu_seconds=sample.cpu_usage_seconds,
            memory_bytes=memory if memory is not None else sample.memory_usage_bytes,
            pids=sample.pids,
        )

    def _call(self, operation: str, call: Any) -> Any:
        try:
            return call()
        except docker.errors.NotFound as error:
            raise ContainerNotFoundError(str(error.explanation or error)) from error
        except docker.errors.APIError as error:
            raise DockerActionError(
                f"Docker rejected {operation}: {error.explanation or error}"
            ) from error
        except (
            docker.errors.DockerException,
            requests.exceptions.RequestException,
            OSError,
        ) as error:
            raise DockerUnavailableError(
                f"Docker API did not respond to {operation}: {error}; check "
                "--docker.host and that dockerd runs"
            ) from error


def _check_full_id(container_id: str) -> None:
    if not FULL_ID.fullmatch(container_id):
        raise ValueError(
            f"container ID {container_id!r}; expected 64 lowercase hex digits"
        )
