"""Read a container's limit files, and cache them between scrapes.

The CFS quota and period, the cpuset, the memory limit and ``pids.max``
change only when someone runs ``docker update`` or writes the files by
hand. A read is reused until it is ``ttl_seconds`` old, or until the
container's HostConfig limits or cgroup directories differ from those of
the cached read. Discovery inspects the container again on each
``update`` event, so a ``docker update`` shows at the next scrape after
that event. A read that recorded an error is not cached, so the next
scrape counts the error again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from exporter import cgroup_files as files
from exporter.cgroup_access import ContainerFiles, record_error
from exporter.cgroup_paths import CgroupPaths
from exporter.errors import ReaderError
from exporter.model import ContainerInfo, ContainerSample

# Time after which a limit file is read again although nothing announced a
# change. It bounds how long a limit written outside Docker goes unseen.
DEFAULT_TTL_SECONDS = 30.0


@dataclass(frozen=True)
class CgroupLimits:
    """Limits as the files state them, before the host's capacity applies.

    Each ``*_ok`` is False when the value is unknown because a file was
    missing or malformed. A known value of None means no limit: the host's
    CPUs, memory or pid limit is then the effective one.
    """

    cpu_ok: bool
    cpu_cores: float | None
    memory_ok: bool
    memory_bytes: int | None
    pids_ok: bool
    pids: int | None


def _v1_cpu(reading: ContainerFiles) -> tuple[bool, float | None]:
    quota_text = reading.text("cpu", "cpu.cfs_quota_us", optional=True)
    period_text = reading.text("cpu", "cpu.cfs_period_us", optional=True)
    directory = reading.paths.directory("cpu")
    if quota_text is not None and period_text is not None and directory:
        try:
            cores = files.parse_cfs_quota(quota_text, period_text, directory)
        except ReaderError as error:
            reading.error(error)
            return False, None
        if cores is not None:
            return True, cores
    return _cpuset(reading, "cpuset.cpus")


def _v2_cpu(reading: ContainerFiles) -> tuple[bool, float | None]:
    # cpu.max is absent when the cpu controller is not enabled for the
    # container, which means no quota.
    text = reading.text("cpu", "cpu.max", optional=True)
    if text is not None:
        ok, cores = reading.parse("cpu", "cpu.max", text, files.parse_cpu_max)
        if not ok:
            return False, None
        if cores is not None:
            return True, cores
    return _cpuset(reading, "cpuset.cpus.effective")


def _cpuset(reading: ContainerFiles, name: str) -> tuple[bool, float | None]:
    text = reading.text("cpuset", name, optional=True)
    if text is None:
        # No cpuset controller here: the container may run on every CPU.
        return True, None
    ok, size = reading.parse("cpuset", name, text, files.parse_cpuset_size)
    # An unreadable cpuset gives an unknown limit rather than the host's
    # CPUs, which could be far above the real one.
    return ok, None if size is None else float(size)


def read_limits(
    container: ContainerInfo, paths: CgroupPaths, sample: ContainerSample
) -> CgroupLimits:
    """Read the limit files, recording faults on ``sample``.

    Raises:
        ContainerGoneError: the cgroup directory was removed.
    """
    reading = ContainerFiles(container, paths, sample)
    if paths.version == 2:
        cpu_ok, cores = _v2_cpu(reading)
        memory_name = "memory.max"
    else:
        cpu_ok, cores = _v1_cpu(reading)
        memory_name = "memory.limit_in_bytes"
    memory_ok, memory = reading.limit("memory", memory_name, files.parse_limit)
    pids_ok, pids = reading.limit("pids", "pids.max", files.parse_limit)
    return CgroupLimits(
        cpu_ok=cpu_ok,
        cpu_cores=cores,
        memory_ok=memory_ok,
        memory_bytes=memory,
        pids_ok=pids_ok,
        pids=pids,
    )


def _declared(container: ContainerInfo) -> tuple[object, ...]:
    return (
        container.nano_cpus,
        container.cpu_quota,
        container.cpu_period,
        container.cpuset_cpus,
        container.memory_limit,
        container.pids_limit,
    )


@dataclass(frozen=True)
class _Entry:
    paths: CgroupPaths
    declared: tuple[object, ...]
    read_at: float
    limits: CgroupLimits


class LimitCache:
    """Reuse each container's limit read for up to ``ttl_seconds``.

    Safe to call from several threads. Two threads that miss at once both
    read the files, and the later read replaces the earlier one.
    """

    def __init__(
        self,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def get(
        self, container: ContainerInfo, paths: CgroupPaths, sample: ContainerSample
    ) -> CgroupLimits:
        """Return the cached limits, or read them and record faults on ``sample``.

        Raises:
            ContainerGoneError: the cgroup directory was removed.
        """
        now = self.clock()
        declared = _declared(container)
        with self._lock:
            entry = self._entries.get(container.id)
        if (
            entry is not None
            and entry.paths is paths
            and entry.declared == declared
            and now - entry.read_at < self.ttl_seconds
        ):
            return entry.limits

        # A sample of its own shows whether this read alone had a fault.
        own = ContainerSample()
        limits = read_limits(container, paths, own)
        for kind, message in own.errors.items():
            record_error(sample, kind, message)
        with self._lock:
            if own.errors:
                self._entries.pop(container.id, None)
            else:
                self._entries[container.id] = _Entry(paths, declared, now, limits)
        return limits

    def forget(self, container_id: str) -> None:
        """Drop the cached limits of a container."""
        with self._lock:
            self._entries.pop(container_id, None)

    def retain(self, container_ids: set[str]) -> None:
        """Drop the cached limits of every container not in ``container_ids``."""
        with self._lock:
            for container_id in set(self._entries) - container_ids:
                del self._entries[container_id]
