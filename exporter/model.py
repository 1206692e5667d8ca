"""Data passed between container discovery, the readers and the collector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ContainerInfo:
    """Metadata of one running container, cached by discovery.

    Limits are the values from the container's HostConfig, 0 when unset, as
    the Docker API reports them.
    """

    id: str
    name: str
    image: str
    image_id: str
    labels: dict[str, str]
    pid: int
    started_at: float
    paused: bool = False
    nano_cpus: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    memory_limit: int = 0
    pids_limit: int = 0

    @property
    def compose_project(self) -> str:
        return self.labels.get("com.docker.compose.project", "")

    @property
    def compose_service(self) -> str:
        return self.labels.get("com.docker.compose.service", "")

    @property
    def protected(self) -> bool:
        return self.labels.get("warden.protect", "").lower() == "true"


@dataclass
class ContainerSample:
    """One read of a container's resource use.

    A field is None when its value is unknown for this read: the file was
    missing or malformed, or the source does not report it. The collector
    publishes no series for a None field. ``errors`` maps an error kind, the
    ``kind`` label of ``warden_exporter_errors_total``, to a message.
    """

    cpu_usage_seconds: float | None = None
    # The clock that CPU usage is measured against, in seconds: monotonic time
    # on the cgroup path, system CPU time over online CPUs on the stats API.
    cpu_clock_seconds: float | None = None
    cpu_throttled_seconds: float | None = None
    cpu_limit_cores: float | None = None
    memory_usage_bytes: int | None = None
    memory_working_set_bytes: int | None = None
    memory_limit_bytes: int | None = None
    memory_oom_kills: int | None = None
    pids: int | None = None
    pids_limit: int | None = None
    errors: dict[str, str] = field(default_factory=dict)


class ContainerGoneError(Exception):
    """The container stopped or was removed while it was being read."""


class SampleSource(Protocol):
    """Reads resource use of containers: the cgroup files or the stats API."""

    name: str  # "cgroup" or "api", for logs and the landing page

    def read(self, container: ContainerInfo) -> ContainerSample:
        """Read one container.

        Raises:
            ContainerGoneError: the container no longer exists or stopped.
        """
        ...

    def read_all(
        self, containers: Sequence[ContainerInfo]
    ) -> dict[str, ContainerSample]:
        """Read many containers, keyed by ID; containers that are gone are left out.

        A container whose read failed as a whole, for example a stats request
        that timed out, maps to a sample with every value None. Its
        ``errors`` name the reason (kind ``stats_timeout`` or ``stats_read``),
        so the failure is counted and no series shows a made-up value.
        """
        ...
