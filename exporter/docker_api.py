"""The exporter's only access to the Docker Engine API.

Every Docker SDK call of the exporter goes through ``DockerApi``, so that
tests can drive the rare cases (name quirks, races, engine loss) with a fake
of this small interface while the main paths run against a real engine.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions

from exporter.model import ContainerGoneError, ContainerInfo

log = logging.getLogger(__name__)

LOCAL_SOCKET = "unix:///var/run/docker.sock"

# The events discovery needs to keep its cache of running containers fresh.
CONTAINER_EVENTS = ("start", "die", "destroy", "rename", "pause", "unpause", "update")

_RFC3339 = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$"
)

# Failures of the transport, as opposed to a reply that the engine sent.
_TRANSPORT_ERRORS = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    OSError,
)


class DockerApiError(Exception):
    """A call to the Docker Engine API failed."""


class DockerUnavailableError(DockerApiError):
    """The Docker engine could not be reached or returned an error."""


class DockerTimeoutError(DockerApiError):
    """The Docker engine did not reply within the configured timeout."""


class EventStream(Protocol):
    """An open stream of engine events that another thread can close."""

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class DockerClient(Protocol):
    """The calls that discovery and the stats-API reader make."""

    def ping(self) -> None: ...

    def running_containers(self) -> list[ContainerInfo]: ...

    def inspect(self, container_id: str) -> ContainerInfo | None: ...

    def events(self, since: float, until: float) -> EventStream: ...

    def stats(self, container_id: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


def canonical_name(names: list[str], fallback: str) -> str:
    """Return the container's own name from the Names list of the list call.

    With legacy links a container appears under several names, such as
    ``/proxy/app`` and ``/app``. Its own name is the one with no ``/`` after
    the leading one. ``fallback`` is returned when no entry has that form.
    """
    for entry in names:
        name = entry[1:] if entry.startswith("/") else entry
        if name and "/" not in name:
            return name
    return fallback


def parse_docker_time(text: str) -> float:
    """Convert an RFC 3339 time of the Docker API to Unix seconds.

    The engine writes nanoseconds, which ``datetime`` cannot parse, so the
    fraction is cut to microseconds. The zero time ``0001-01-01T00:00:00Z``
    and an unparsable text become 0.0.
    """
    match = _RFC3339.match(text)
    if match is None or text.startswith("0001-01-01"):
        return 0.0
    seconds, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    micros = (fraction or "0")[:6]
    return datetime.fromisoformat(f"{seconds}.{micros:0<6}{zone}").timestamp()


def container_info_from_inspect(attrs: Mapping[str, Any]) -> ContainerInfo:
    """Build a ContainerInfo from the reply of ``GET /containers/{id}/json``."""
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    host_config = attrs.get("HostConfig") or {}
    container_id = attrs["Id"]
    return ContainerInfo(
        id=container_id,
        name=canonical_name([attrs.get("Name") or ""], fallback=container_id[:12]),
        image=config.get("Image") or "",
        image_id=attrs.get("Image") or "",
        labels=dict(config.get("Labels") or {}),
        pid=int(state.get("Pid") or 0),
        started_at=parse_docker_time(state.get("StartedAt") or ""),
        paused=bool(state.get("Paused")),
        nano_cpus=int(host_config.get("NanoCpus") or 0),
        cpu_quota=int(host_config.get("CpuQuota") or 0),
        cpu_period=int(host_config.get("CpuPeriod") or 0),
        cpuset_cpus=host_config.get("CpusetCpus") or "",
        memory_limit=int(host_config.get("Memory") or 0),
        # The engine reports an unlimited PIDs limit as null, 0 or -1.
        pids_limit=max(int(host_config.get("PidsLimit") or 0), 0),
    )


class DockerApi:
    """Docker Engine API access through the Docker SDK's low-level client.

    The SDK clients are made on first use and again after a failure, so an
    engine that is down at start or restarts later is picked up without a
    restart of the exporter. The API version is negotiated with the engine.

    Args:
        base_url: engine address such as ``unix:///var/run/docker.sock``;
            None reads DOCKER_HOST, else the local socket.
        timeout: seconds to wait for any reply except the events stream.
    """

    def __init__(self, base_url: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url or os.environ.get("DOCKER_HOST") or LOCAL_SOCKET
        self.timeout = timeout
        self._lock = threading.Lock()
        self._client: docker.APIClient | None = None

    def _api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.APIClient(
                        base_url=self.base_url,
                        version="auto",
                        timeout=self.timeout,
                        max_pool_size=16,
                    )
                except _TRANSPORT_ERRORS as error:
                    raise DockerUnavailableError(
                        f"Docker engine at {self.base_url} is unreachable: {error}"
                    ) from error
            return self._client

    def _reset(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _failed(self, call: str, error: BaseException) -> DockerApiError:
        if isinstance(error, requests.exceptions.Timeout):
            return DockerTimeoutError(
                f"Docker API call {call} timed out after {self.timeout} s"
            )
        self._reset()
        return DockerUnavailableError(
            f"Docker API call {call} to {self.base_url} failed: {error}"
        )

    def ping(self) -> None:
        """Ping the engine and raise DockerUnavailableError when it does not reply."""
        try:
            self._api().ping()
        except _TRANSPORT_ERRORS as error:
            raise self._failed("ping", error) from error

    def running_containers(self) -> list[ContainerInfo]:
        """List running containers with the metadata of an inspect of each.

        A container removed between the list and its inspect is left out.
        """
        try:
            listed = self._api().containers(filters={"status": "running"})
        except _TRANSPORT_ERRORS as error:
            raise self._failed("list containers", error) from error
        infos = []
        for entry in listed:
            info = self.inspect(entry["Id"])
            if info is not None:
                infos.append(info)
        return infos

    def inspect(self, container_id: str) -> ContainerInfo | None:
        """Return a running container's metadata, or None if it is not running."""
        try:
            attrs = self._api().inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        except _TRANSPORT_ERRORS as error:
            raise self._failed(f"inspect {container_id}", error) from error
        if not (attrs.get("State") or {}).get("Running"):
            return None
        return container_info_from_inspect(attrs)

    def events(self, since: float, until: float) -> EventStream:
        """Open the stream of container events between two Unix times.

        The engine ends the stream at ``until``; ``close()`` ends it earlier.
        A separate client with no read timeout carries the stream, because
        minutes can pass between two events.
        """
        try:
            client = docker.APIClient(
                base_url=self.base_url, version=self._api().api_version, timeout=None
            )
            stream = client.events(
                since=int(since),
                until=int(until),
                filters={"type": "container", "event": list(CONTAINER_EVENTS)},
                decode=True,
            )
        except _TRANSPORT_ERRORS as error:
            raise self._failed("events", error) from error
        return _ClosingStream(stream, client)

    def stats(self, container_id: str) -> dict[str, Any]:
        """Return one stats reply of a container (``stream=False``, one shot).

        Raises:
            ContainerGoneError: the container no longer exists.
            DockerTimeoutError: the engine did not reply in time.
        """
        try:
            reply = self._api().stats(
                container_id, decode=False, stream=False, one_shot=True
            )
        except docker.errors.NotFound as error:
            raise ContainerGoneError(container_id) from error
        except _TRANSPORT_ERRORS as error:
            raise self._failed(f"stats {container_id}", error) from error
        return dict(reply)

    def host_memory_bytes(self) -> int | None:
        """Return the engine host's memory from ``docker info``, or None."""
        try:
            info = self._api().info()
        except (DockerApiError, *_TRANSPORT_ERRORS) as error:
            log.warning("docker info failed, host memory unknown: %s", error)
            return None
        total = info.get("MemTotal")
        return int(total) if isinstance(total, int) and total > 0 else None

    def close(self) -> None:
        """Close the connections to the engine."""
        self._reset()


class _ClosingStream:
    """An events stream that closes its own client when it ends."""

    def __init__(self, stream: Any, client: docker.APIClient) -> None:
        self._stream = stream
        self._client = client

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self._stream
        except _TRANSPORT_ERRORS as error:
            raise DockerUnavailableError(f"events stream failed: {error}") from error
        finally:
            self._client.close()

    def close(self) -> None:
        self._stream.close()
        self._client.close()
