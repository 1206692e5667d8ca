"""Read container resource use from cgroup v1 and v2 files."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter import cgroup_files as files
from exporter.cgroup_access import ContainerFiles
from exporter.cgroup_limits import LimitCache
from exporter.cgroup_paths import (
    CgroupPaths,
    CgroupResolver,
    find_v1_mounts,
    is_cgroup_v2,
)
from exporter.errors import (
    CgroupReadError,
    HostFactError,
    ReaderError,
)
from exporter.host import HostFacts, HostLimits
from exporter.model import ContainerGoneError, ContainerInfo, ContainerSample

logger = logging.getLogger(__name__)


def _key(key: str) -> Callable[[str, str], int]:
    def parse(text: str, path: str) -> int:
        return files.parse_key(text, path, key)

    return parse


@dataclass(frozen=True)
class _Layout:
    """File locations of each value in one cgroup version."""

    version: int
    cpu_usage: tuple[str, str, Callable[[str, str], int]]
    cpu_throttled: tuple[str, str, Callable[[str, str], int]]
    cpu_units_per_second: float
    memory_usage: str
    inactive_file: str
    oom_events: str


_V1_LAYOUT = _Layout(
    version=1,
    cpu_usage=("cpuacct", "cpuacct.usage", files.parse_integer),
    cpu_throttled=("cpu", "cpu.stat", _key("throttled_time")),
    cpu_units_per_second=1e9,  # nanoseconds
    memory_usage="memory.usage_in_bytes",
    # total_ includes child cgroups, as usage_in_bytes does.
    inactive_file="total_inactive_file",
    oom_events="memory.oom_control",
)

_V2_LAYOUT = _Layout(
    version=2,
    cpu_usage=("cpu", "cpu.stat", _key("usage_usec")),
    cpu_throttled=("cpu", "cpu.stat", _key("throttled_usec")),
    cpu_units_per_second=1e6,  # microseconds
    memory_usage="memory.current",
    inactive_file="inactive_file",
    oom_events="memory.events",
)


def _working_set(usage: int | None, inactive_file: int | None) -> int | None:
    if usage is None or inactive_file is None:
        return None
    return max(usage - inactive_file, 0)


def _cap(value: int | None, ceiling: int) -> int:
    # An unlimited or above-host limit is in effect the host's own capacity.
    # This also covers v1's "unlimited" memory.limit_in_bytes, the largest
    # signed 64-bit value rounded down to a page (9223372036854771712 with
    # 4 KiB pages), without a constant per page size.
    if value is None or value >= ceiling:
        return ceiling
    return value


class CgroupReader:
    """Read samples from the cgroup files of containers on this host.

    ``cgroup_root`` and ``proc_root`` are the host's /sys/fs/cgroup and /proc,
    mounted elsewhere when the exporter itself runs in a container.
    ``limits`` caches the limit files between reads. Read faults are logged
    at debug only, because the caller counts them and decides what to log.
    Safe to call from several threads.
    """

    name = "cgroup"

    def __init__(
        self,
        cgroup_root: str | Path = "/sys/fs/cgroup",
        proc_root: str | Path = "/proc",
        host: HostFacts | None = None,
        limits: LimitCache | None = None,
    ) -> None:
        self.cgroup_root = Path(cgroup_root)
        self.proc_root = Path(proc_root)
        self.host = host or HostFacts(self.proc_root)
        self._resolver = CgroupResolver(self.cgroup_root, self.proc_root)
        self._limits = limits or LimitCache()

    def probe(self, containers: Sequence[ContainerInfo] = ()) -> str | None:
        """Return None when the cgroup files are usable here, else the reason.

        With ``containers``, the first one that resolves proves that
        ``proc_root`` is the host's pid namespace. A container that is gone
        is skipped, because it may just have stopped.
        """
        if not self.cgroup_root.is_dir():
            return f"cgroup root {self.cgroup_root} is not a directory"
        if not is_cgroup_v2(self.cgroup_root):
            mounts = find_v1_mounts(self.cgroup_root)
            missing = [c for c in ("cpuacct", "memory", "pids") if c not in mounts]
            if missing:
                return (
                    f"cgroup v1 controllers {', '.join(missing)} are not mounted "
                    f"under {self.cgroup_root}"
                )
        try:
            self.host.limits()
        except HostFactError as error:
            return str(error)
        for container in containers:
            try:
                self._resolver.resolve(container)
            except ContainerGoneError:
                continue
            except (ReaderError, OSError) as error:
                return (
                    f"failed to resolve the cgroup of container {container.id}: {error}"
                )
            return None
        if containers:
            return (
                f"no container's init process was found under {self.proc_root}; "
                "mount the host's /proc and run in the host's pid namespace"
            )
        return None

    def read(self, container: ContainerInfo) -> ContainerSample:
        """Read one container; faults leave fields None and add ``errors``.

        Raises:
            ContainerGoneError: the container's process or cgroup is gone.
        """
        return self._read(container, self._read_files)

    def read_cpu(self, container: ContainerInfo) -> ContainerSample:
        """Read only the CPU usage counter and its clock, as a sampler needs.

        Raises:
            ContainerGoneError: the container's process or cgroup is gone.
        """
        return self._read(container, self._read_cpu_usage)

    def read_all(
        self, containers: Sequence[ContainerInfo]
    ) -> dict[str, ContainerSample]:
        """Read containers one after another; those that are gone are left out."""
        samples: dict[str, ContainerSample] = {}
        for container in containers:
            try:
                samples[container.id] = self.read(container)
            except ContainerGoneError as error:
                logger.debug("skipping container %s: %s", container.id, error)
        self.retain({container.id for container in containers})
        return samples

    def forget(self, container_id: str) -> None:
        """Drop what is cached about a removed container."""
        self._resolver.forget(container_id)
        self._limits.forget(container_id)

    def retain(self, container_ids: set[str]) -> None:
        """Drop what is cached about containers not in ``container_ids``."""
        self._resolver.retain(container_ids)
        self._limits.retain(container_ids)

    def _read(
        self,
        container: ContainerInfo,
        fill: Callable[[ContainerFiles, _Layout], None],
    ) -> ContainerSample:
        sample = ContainerSample()
        paths = self._resolve(container, sample)
        if paths is None:
            return sample
        layout = _V2_LAYOUT if paths.version == 2 else _V1_LAYOUT
        try:
            fill(ContainerFiles(container, paths, sample), layout)
        except ContainerGoneError:
            self.forget(container.id)
            raise
        return sample

    def _resolve(
        self, container: ContainerInfo, sample: ContainerSample
    ) -> CgroupPaths | None:
        try:
            return self._resolver.resolve(container)
        except ReaderError as error:
            message = str(error)
            sample.errors[error.kind] = message
        except OSError as error:
            message = (
                f"failed to resolve the cgroup of container {container.id}: {error}"
            )
            sample.errors[CgroupReadError.kind] = message
        logger.debug("container %s: %s", container.id, message)
        return None

    @staticmethod
    def _read_cpu_usage(reading: ContainerFiles, layout: _Layout) -> None:
        sample = reading.sample
        sample.cpu_clock_seconds = time.monotonic()
        usage = reading.value(*layout.cpu_usage)
        if usage is not None:
            sample.cpu_usage_seconds = usage / layout.cpu_units_per_second

    def _read_files(self, reading: ContainerFiles, layout: _Layout) -> None:
        sample = reading.sample
        try:
            host: HostLimits | None = self.host.limits()
        except HostFactError as error:
            sample.errors["host_read"] = str(error)
            host = None
        self._read_cpu_usage(reading, layout)
        throttled = reading.value(*layout.cpu_throttled)
        if throttled is not None:
            sample.cpu_throttled_seconds = throttled / layout.cpu_units_per_second

        memory = reading.value("memory", layout.memory_usage, files.parse_integer)
        sample.memory_usage_bytes = memory
        inactive = reading.value("memory", "memory.stat", _key(layout.inactive_file))
        sample.memory_working_set_bytes = _working_set(memory, inactive)
        sample.memory_oom_kills = reading.value(
            "memory", layout.oom_events, _key("oom_kill")
        )
        sample.pids = reading.value("pids", "pids.current", files.parse_integer)

        limits = self._limits.get(reading.container, reading.paths, sample)
        if limits.cpu_ok:
            if limits.cpu_cores is not None:
                sample.cpu_limit_cores = limits.cpu_cores
            elif host is not None:
                sample.cpu_limit_cores = float(host.online_cpus)
        if limits.memory_ok and host is not None:
            sample.memory_limit_bytes = _cap(
                limits.memory_bytes, host.memory_total_bytes
            )
        if limits.pids_ok and host is not None:
            sample.pids_limit = _cap(limits.pids, host.pids_limit)
