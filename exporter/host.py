"""Facts about the host that bound a container's limits: CPUs, memory, pids."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.errors import HostFactError

logger = logging.getLogger(__name__)

# CPUs change by hotplug and memory by ballooning, both rarely. A short cache
# keeps a scrape of many containers to one read of each file.
DEFAULT_TTL_SECONDS = 10.0

_CPU_LINE = re.compile(r"^cpu\d+\s", re.MULTILINE)


def count_cpu_list(text: str) -> int:
    """Count the CPUs in a kernel CPU list such as ``0-3,8`` or ``0``.

    Raises:
        ValueError: the text is empty or not in the list format.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty CPU list")
    cpus: set[int] = set()
    for part in stripped.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise ValueError(f"invalid CPU list entry {part!r}")
        end = int(last) if dash else int(first)
        if end < int(first):
            raise ValueError(f"CPU range {part!r} runs backwards")
        cpus.update(range(int(first), end + 1))
    return len(cpus)


@dataclass(frozen=True)
class HostLimits:
    """The host's capacity, in the units of the metrics that use it."""

    online_cpus: int
    memory_total_bytes: int
    pids_limit: int


class HostFacts:
    """Read the host's online CPUs, MemTotal and pid limit from a proc root."""

    def __init__(
        self, proc_root: str | Path = "/proc", ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> None:
        self.proc_root = Path(proc_root)
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._cached: HostLimits | None = None
        self._read_at = 0.0

    def limits(self) -> HostLimits:
        """Return the host limits, read again once the cache is older than the TTL.

        Raises:
            HostFactError: a proc file is missing or malformed.
        """
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._read_at >= self.ttl_seconds:
                self._cached = HostLimits(
                    online_cpus=self._read_online_cpus(),
                    memory_total_bytes=self._read_memory_total(),
                    pids_limit=self._read_pids_limit(),
                )
                self._read_at = now
                logger.debug("host limits: %s", self._cached)
            return self._cached

    def online_cpus(self) -> int:
        """Return the number of online CPUs."""
        return self.limits().online_cpus

    def memory_total_bytes(self) -> int:
        """Return MemTotal in bytes."""
        return self.limits().memory_total_bytes

    def pids_limit(self) -> int:
        """Return the most tasks the kernel allows: pid_max or threads-max."""
        return self.limits().pids_limit

    def _read(self, relative: str) -> str:
        path = self.proc_root / relative
        try:
            return path.read_text()
        except OSError as error:
            raise HostFactError(
                f"failed to read {path}: {error}; check that --proc.root points at "
                "the host's /proc"
            ) from error

    def _read_online_cpus(self) -> int:
        # /proc/stat has one cpuN line per online CPU, and unlike
        # /sys/devices/system/cpu/online it is under the proc root.
        text = self._read("stat")
        count = len(_CPU_LINE.findall(text))
        if count == 0:
            raise HostFactError(
                f"no cpuN lines in {self.proc_root / 'stat'}; expected one per "
                "online CPU"
            )
        return count

    def _read_memory_total(self) -> int:
        text = self._read("meminfo")
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key != "MemTotal":
                continue
            fields = rest.split()
            if len(fields) == 2 and fields[0].isdigit() and fields[1] == "kB":
                return int(fields[0]) * 1024
            raise HostFactError(
                f"invalid MemTotal line {line!r} in {self.proc_root / 'meminfo'}; "
                "expected 'MemTotal: <n> kB'"
            )
        raise HostFactError(f"no MemTotal line in {self.proc_root / 'meminfo'}")

    def _read_pids_limit(self) -> int:
        limits = []
        for relative in ("sys/kernel/pid_max", "sys/kernel/threads-max"):
            text = self._read(relative).strip()
            if not text.isdigit():
                raise HostFactError(
                    f"invalid content {text!r} in {self.proc_root / relative}; "
                    "expected an integer"
                )
            limits.append(int(text))
        return min(limits)
