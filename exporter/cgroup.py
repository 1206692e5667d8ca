"""Read container resource use from cgroup v1 and v2 files."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from exporter import cgroup_files as files
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

T = TypeVar("T")


class _Files:
    """Read one container's cgroup files, turning faults into sample errors."""

    def __init__(
        self, container: ContainerInfo, paths: CgroupPaths, sample: ContainerSample
    ) -> None:
        self.container = container
        self.paths = paths
        self.sample = sample

    def error(self, error: ReaderError) -> None:
        """Record ``error`` on the sample; several of one kind are joined."""
        message = str(error)
        previous = self.sample.errors.get(error.kind)
        self.sample.errors[error.kind] = (
            f"{previous}; {message}" if previous else message
        )
        logger.debug("container %s: %s", self.container.id, message)

    def text(self, controller: str, name: str, optional: bool = False) -> str | None:
        """Return a file's text, or None after recording why it is missing.

        A missing file whose cgroup is also gone means the container is gone.
        With ``optional`` a missing file is not an error.

        Raises:
            ContainerGoneError: the cgroup directory was removed.
        """
        directory = self.paths.directory(controller)
        if directory is None:
            if not optional:
                self.error(
                    CgroupReadError(
                        f"cgroup controller {controller} is not mounted, so "
                        f"{name} of container {self.container.id} is unknown"
                    )
                )
            return None
        path = directory / name
        try:
            return path.read_text()
        except FileNotFoundError:
            self._raise_if_gone()
            if not optional:
                self.error(CgroupReadError(f"cgroup file {path} does not exist"))
            return None
        except OSError as error:
            # ENODEV and friends come from a cgroup being torn down right now.
            self._raise_if_gone()
            self.error(CgroupReadError(f"failed to read cgroup file {path}: {error}"))
            return None

    def _raise_if_gone(self) -> None:
        # Only the primary directory decides: a missing cpuset directory on a
        # host that places containers in no cpuset cgroup is not removal.
        primary = self.paths.primary()
        if primary is None or not primary.is_dir():
            raise ContainerGoneError(
                f"cgroup {primary} of container {self.container.id} was removed"
            )

    def parse(
        self, controller: str, name: str, text: str, parse: Callable[[str, Path], T]
    ) -> tuple[bool, T | None]:
        """Parse a file's text; return (ok, value), recording a parse fault."""
        directory = self.paths.directory(controller)
        assert directory is not None
        try:
            return True, parse(text, directory / name)
        except ReaderError as error:
            self.error(error)
            return False, None

    def value(
        self, controller: str, name: str, parse: Callable[[str, Path], T]
    ) -> T | None:
        """Read and parse a required file; None after recording any fault."""
        text = self.text(controller, name)
        if text is None:
            return None
        return self.parse(controller, name, text, parse)[1]

    def limit(
        self, controller: str, name: str, parse: Callable[[str, Path], int | None]
    ) -> tuple[bool, int | None]:
        """Read a limit file where None means unlimited; return (ok, limit)."""
        text = self.text(controller, name)
        if text is None:
            return False, None
        return self.parse(controller, name, text, parse)


def _key(key: str) -> Callable[[str, Path], int]:
    def parse(text: str, path: Path) -> int:
        return files.parse_key(text, path, key)

    return parse


@dataclass(frozen=True)
class _Layout:
    """File locations of each value in one cgroup version."""

    version: int
    cpu_usage: tuple[str, str, Callable[[str, Path], int]]
    cpu_throttled: tuple[str, str, Callable[[str, Path], int]]
    cpu_units_per_second: float
    memory_usage: str
    inactive_file: str
    memory_limit: str
    oom_events: str


_V1_LAYOUT = _Layout(
    version=1,
    cpu_usage=("cpuacct", "cpuacct.usage", files.parse_integer),
    cpu_throttled=("cpu", "cpu.stat", _key("throttled_time")),
    cpu_units_per_second=1e9,  # nanoseconds
    memory_usage="memory.usage_in_bytes",
    # total_ includes child cgroups, as usage_in_bytes does.
    inactive_file="total_inactive_file",
    memory_limit="memory.limit_in_bytes",
    oom_events="memory.oom_control",
)

_V2_LAYOUT = _Layout(
    version=2,
    cpu_usage=("cpu", "cpu.stat", _key("usage_usec")),
    cpu_throttled=("cpu", "cpu.stat", _key("throttled_usec")),
    cpu_units_per_second=1e6,  # microseconds
    memory_usage="memory.current",
    inactive_file="inactive_file",
    memory_limit="memory.max",
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
    mounted elsewhere when the exporter itself runs in a container. Safe to
    call from several threads.
    """

    name = "cgroup"

    def __init__(
        self,
        cgroup_root: str | Path = "/sys/fs/cgroup",
        proc_root: str | Path = "/proc",
        host: HostFacts | None = None,
    ) -> None:
        self.cgroup_root = Path(cgroup_root)
        self.proc_root = Path(proc_root)
        self.host = host or HostFacts(self.proc_root)
        self._resolver = CgroupResolver(self.cgroup_root, self.proc_root)
        self._warned_lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()

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
        sample = ContainerSample()
        try:
            paths = self._resolver.resolve(container)
        except ReaderError as error:
            sample.errors[error.kind] = str(error)
            self._warn_once(container.id, error.kind, str(error))
            return sample
        except OSError as error:
            message = (
                f"failed to resolve the cgroup of container {container.id}: {error}"
            )
            sample.errors[CgroupReadError.kind] = message
            self._warn_once(container.id, CgroupReadError.kind, message)
            return sample

        reading = _Files(container, paths, sample)
        try:
            host: HostLimits | None = self.host.limits()
        except HostFactError as error:
            sample.errors["host_read"] = str(error)
            host = None
        try:
            layout = _V2_LAYOUT if paths.version == 2 else _V1_LAYOUT
            self._read_files(reading, host, layout)
        except ContainerGoneError:
            self._resolver.forget(container.id)
            raise
        for kind, message in sample.errors.items():
            self._warn_once(container.id, kind, message)
        return sample

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
        with self._warned_lock:
            self._warned = {key for key in self._warned if key[0] != container_id}

    def retain(self, container_ids: set[str]) -> None:
        """Drop what is cached about containers not in ``container_ids``."""
        self._resolver.retain(container_ids)
        with self._warned_lock:
            self._warned = {key for key in self._warned if key[0] in container_ids}

    def _warn_once(self, container_id: str, kind: str, message: str) -> None:
        # A broken file stays broken on every scrape; the error counter shows
        # the repeats, the log shows the first one per container and kind.
        key = (container_id, kind)
        with self._warned_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning("container %s: %s", container_id, message)

    def _v1_cpu_limit(self, reading: _Files, host: HostLimits | None) -> float | None:
        quota_text = reading.text("cpu", "cpu.cfs_quota_us", optional=True)
        period_text = reading.text("cpu", "cpu.cfs_period_us", optional=True)
        directory = reading.paths.directory("cpu")
        if quota_text is not None and period_text is not None and directory:
            try:
                cores = files.parse_cfs_quota(quota_text, period_text, directory)
            except ReaderError as error:
                reading.error(error)
                return None
            if cores is not None:
                return cores
        return self._cpuset_limit(reading, host, "cpuset.cpus")

    def _cpuset_limit(
        self, reading: _Files, host: HostLimits | None, name: str
    ) -> float | None:
        text = reading.text("cpuset", name, optional=True)
        if text is None:
            # No cpuset controller here: the container may run on every CPU.
            return float(host.online_cpus) if host is not None else None
        ok, size = reading.parse("cpuset", name, text, files.parse_cpuset_size)
        if not ok:
            # An unreadable cpuset gives no limit rather than the host's CPUs,
            # which could be far above the real one.
            return None
        if size is None:
            return float(host.online_cpus) if host is not None else None
        return float(size)

    def _v2_cpu_limit(self, reading: _Files, host: HostLimits | None) -> float | None:
        # cpu.max is absent when the cpu controller is not enabled for the
        # container, which means no quota.
        text = reading.text("cpu", "cpu.max", optional=True)
        if text is not None:
            ok, cores = reading.parse("cpu", "cpu.max", text, files.parse_cpu_max)
            if not ok:
                return None
            if cores is not None:
                return cores
        return self._cpuset_limit(reading, host, "cpuset.cpus.effective")

    def _read_files(
        self, reading: _Files, host: HostLimits | None, layout: _Layout
    ) -> None:
        sample = reading.sample
        sample.cpu_clock_seconds = time.monotonic()
        usage = reading.value(*layout.cpu_usage)
        if usage is not None:
            sample.cpu_usage_seconds = usage / layout.cpu_units_per_second
        throttled = reading.value(*layout.cpu_throttled)
        if throttled is not None:
            sample.cpu_throttled_seconds = throttled / layout.cpu_units_per_second
        if layout.version == 2:
            sample.cpu_limit_cores = self._v2_cpu_limit(reading, host)
        else:
            sample.cpu_limit_cores = self._v1_cpu_limit(reading, host)

        memory = reading.value("memory", layout.memory_usage, files.parse_integer)
        sample.memory_usage_bytes = memory
        inactive = reading.value("memory", "memory.stat", _key(layout.inactive_file))
        sample.memory_working_set_bytes = _working_set(memory, inactive)
        ok, limit = reading.limit("memory", layout.memory_limit, files.parse_limit)
        if ok and host is not None:
            sample.memory_limit_bytes = _cap(limit, host.memory_total_bytes)
        sample.memory_oom_kills = reading.value(
            "memory", layout.oom_events, _key("oom_kill")
        )

        sample.pids = reading.value("pids", "pids.current", files.parse_integer)
        ok, limit = reading.limit("pids", "pids.max", files.parse_limit)
        if ok and host is not None:
            sample.pids_limit = _cap(limit, host.pids_limit)
