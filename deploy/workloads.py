"""Containers that break, or keep, the default policy on purpose.

The demo, the end-to-end tests and the latency benchmark start these with
the busybox test image. Each one runs with no network and resource limits
small enough that a busy host still grants them. A CPU spinner limited
to a tenth of a core reaches its limit even when a dozen other processes
compete for two cores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

logger = logging.getLogger(__name__)

IMAGE = os.environ.get("WARDEN_TEST_IMAGE", "warden-busybox:latest")
MEBIBYTE = 1024 * 1024

# A tenth of a core, as Docker's NanoCpus.
TENTH_CORE = 100_000_000
# CPU weight of the spinners, eight times Docker's default of 1024. Under
# contention the scheduler gives them their tenth of a core without a gap,
# while the quota still caps them at that tenth.
SPINNER_CPU_SHARES = 8192
MEMORY_LIMIT_MIB = 64
PIDS_LIMIT = 40

SPIN = "yes > /dev/null"


def fill_memory(mebibytes: int) -> str:
    """Return a shell command that keeps ``mebibytes`` of tmpfs in memory.

    Pages in /dev/shm are shared memory, so the kernel cannot drop them as
    cache and they count in the working set.
    """
    return f"dd if=/dev/zero of=/dev/shm/fill bs=1M count={mebibytes} 2>/dev/null"


@dataclass(frozen=True)
class Workload:
    """One container to start, and the violation it is expected to cause."""

    key: str
    summary: str
    command: str
    # The violation label expected on its kill, or None when it must survive.
    violation: str | None
    limits: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)


CPU_SPIKE = Workload(
    key="cpu-spike",
    summary="spins at its CPU limit of 0.1 cores",
    command=SPIN,
    violation="cpu_spike",
    limits={"nano_cpus": TENTH_CORE, "cpu_shares": SPINNER_CPU_SHARES},
)
MEMORY_SPIKE = Workload(
    key="memory-spike",
    summary=f"fills 62 MiB of its {MEMORY_LIMIT_MIB} MiB memory limit",
    command=f"{fill_memory(62)}; sleep 3600",
    violation="memory_spike",
    limits={"mem_limit": f"{MEMORY_LIMIT_MIB}m"},
)
# The fork bomb stops two tasks short of its pids limit. A fork that hits
# the limit fails in the shell, and busybox sh exits on that failure, which
# would end the container before the enforcer could act.
FORK_BOMB = Workload(
    key="fork-bomb",
    summary=f"forks 37 sleepers under a pids limit of {PIDS_LIMIT}",
    command=("i=0; while [ $i -lt 37 ]; do sleep 3600 & i=$((i + 1)); done; wait"),
    violation="fork_bomb",
    limits={"pids_limit": PIDS_LIMIT},
)
COMBINED = Workload(
    key="busy-and-full",
    summary=f"spins at 0.1 cores with 54 of {MEMORY_LIMIT_MIB} MiB in use",
    command=f"{fill_memory(54)}; {SPIN}",
    violation="combined_anomaly",
    limits={
        "nano_cpus": TENTH_CORE,
        "cpu_shares": SPINNER_CPU_SHARES,
        "mem_limit": f"{MEMORY_LIMIT_MIB}m",
    },
)
WELL_BEHAVED = Workload(
    key="well-behaved",
    summary="sleeps and wakes once a second",
    command="while true; do sleep 1; done",
    violation=None,
    limits={
        "nano_cpus": TENTH_CORE,
        "mem_limit": f"{MEMORY_LIMIT_MIB}m",
        "pids_limit": PIDS_LIMIT,
    },
)
PROTECTED_SPINNER = Workload(
    key="protected-spinner",
    summary="spins at its CPU limit but carries warden.protect=true",
    command=SPIN,
    violation=None,
    limits={"nano_cpus": TENTH_CORE, "cpu_shares": SPINNER_CPU_SHARES},
    labels={"warden.protect": "true"},
)
HALF_FULL = Workload(
    key="half-full",
    summary=f"keeps 32 of {MEMORY_LIMIT_MIB} MiB in use, below every threshold",
    command=f"{fill_memory(32)}; sleep 3600",
    violation=None,
    limits={"mem_limit": f"{MEMORY_LIMIT_MIB}m"},
)

VIOLATIONS = (CPU_SPIKE, MEMORY_SPIKE, FORK_BOMB, COMBINED)
SURVIVORS = (WELL_BEHAVED, PROTECTED_SPINNER, HALF_FULL)


@dataclass
class Started:
    """A workload's container, as started."""

    workload: Workload
    container: Container
    name: str
    started_at: datetime

    @property
    def id(self) -> str:
        return str(self.container.id)


def parse_docker_time(text: str) -> datetime:
    """Parse a Docker or RFC 3339 time with up to nanoseconds into a datetime."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        fraction = re.match(r"\d*", rest)
        digits = fraction.group() if fraction else ""
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(text)


def start_workload(
    client: docker.DockerClient,
    workload: Workload,
    name: str,
    labels: Mapping[str, str],
) -> Started:
    """Run one workload's container detached, with no network."""
    container = client.containers.run(
        IMAGE,
        ["sh", "-c", workload.command],
        name=name,
        detach=True,
        network_mode="none",
        labels={**labels, **workload.labels},
        **workload.limits,
    )
    container.reload()
    started_at = parse_docker_time(container.attrs["State"]["StartedAt"])
    logger.info("started %s (%s): %s", name, container.short_id, workload.summary)
    return Started(workload, container, name, started_at)


def start_workloads(
    client: docker.DockerClient,
    workloads: Iterable[Workload],
    prefix: str,
    labels: Mapping[str, str],
) -> list[Started]:
    """Start each workload as ``<prefix><key>``; remove them all on failure."""
    started: list[Started] = []
    try:
        for workload in workloads:
            name = f"{prefix}{workload.key}"
            started.append(start_workload(client, workload, name, labels))
    except BaseException:
        remove_workloads(started)
        raise
    return started


def remove_workloads(started: Iterable[Started]) -> None:
    """Remove the given containers, ignoring those already gone."""
    for item in started:
        with contextlib.suppress(docker.errors.NotFound):
            item.container.remove(force=True)
            logger.info("removed %s", item.name)


def remove_labelled(client: docker.DockerClient, label: str, value: str) -> int:
    """Remove containers left by an earlier run with the same label value."""
    removed = 0
    for container in client.containers.list(
        all=True, filters={"label": f"{label}={value}"}
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
            removed += 1
    return removed


def is_running(item: Started) -> bool:
    """Tell whether a workload's container is still running."""
    try:
        item.container.reload()
    except docker.errors.NotFound:
        return False
    return bool(item.container.attrs["State"]["Running"])


def wait_for(seconds: float) -> None:
    """Sleep, in small steps so that Ctrl-C is handled at once."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.2, deadline - time.monotonic()))
