"""Read container resource use from the Docker stats API.

The fallback for an engine whose cgroup files the exporter cannot see: a
remote or rootless engine, or an exporter without the host's /proc. On Docker
20.10 with 2 CPUs a one-shot request took 0.1 to 1.0 s (2 s without
one_shot), so requests run in parallel.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from exporter.errors import StatsParseError
from exporter.host import count_cpu_list
from exporter.model import ContainerGoneError, ContainerInfo, ContainerSample

logger = logging.getLogger(__name__)

# Ten requests at a time keep a scrape of a busy host from opening hundreds
# of engine connections at once.
DEFAULT_MAX_CONCURRENT = 10
DEFAULT_TIMEOUT_SECONDS = 5.0

# The engine's CFS period when HostConfig.CpuPeriod is 0: 100 ms.
_DEFAULT_CFS_PERIOD_US = 100_000

# Limits at or above 2**62 are the kernel's or the engine's "unlimited"
# (v1 memory 9223372036854771712, v2 "max" reported as 2**64 - 1).
_UNLIMITED = 2**62

# The "read" time of a reply for a container that is not running.
_ZERO_TIME = "0001-01-01T00:00:00Z"


class StatsClient(Protocol):
    """The part of the Docker API the reader needs."""

    def stats(self, container_id: str) -> dict[str, Any]:
        """Return one one-shot stats reply.

        Raises:
            ContainerGoneError: the container no longer exists.
        """
        ...


_MISSING = object()


def _path(reply: Mapping[str, Any], *keys: str) -> Any:
    """Return the value at ``keys`` in nested objects, or _MISSING."""
    value: Any = reply
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _counter(reply: Mapping[str, Any], *keys: str) -> int | None:
    """Return a non-negative integer field, None if absent.

    Raises:
        StatsParseError: the field is present but null, negative or no number.
    """
    value = _path(reply, *keys)
    if value is _MISSING:
        return None
    # A JSON decoder may hand over 1e9 as a float; any other type is wrong.
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StatsParseError(
            f"invalid {'.'.join(keys)} {value!r} in stats reply; expected a "
            "non-negative integer"
        )
    return value


def _online_cpus(reply: Mapping[str, Any]) -> int | None:
    # percpu_usage lists every possible CPU, online or not, so it is only the
    # fallback; it is absent on cgroup v2.
    online = _counter(reply, "cpu_stats", "online_cpus")
    if online:
        return online
    percpu = _path(reply, "cpu_stats", "cpu_usage", "percpu_usage")
    if isinstance(percpu, list) and percpu:
        return len(percpu)
    return None


def cpu_limit_from_info(
    container: ContainerInfo, online_cpus: int | None
) -> float | None:
    """Return a container's CPU limit in cores from its HostConfig.

    NanoCpus, else CpuQuota over CpuPeriod, else the cpuset size, else the
    engine host's online CPUs; None when none of these is known.
    """
    if container.nano_cpus > 0:
        return container.nano_cpus / 1e9
    if container.cpu_quota > 0:
        period = container.cpu_period or _DEFAULT_CFS_PERIOD_US
        return container.cpu_quota / period
    if container.cpuset_cpus:
        try:
            return float(count_cpu_list(container.cpuset_cpus))
        except ValueError:
            logger.warning(
                "container %s has an invalid CpusetCpus %r; using online CPUs",
                container.id,
                container.cpuset_cpus,
            )
    return float(online_cpus) if online_cpus else None


def sample_from_stats(
    container: ContainerInfo,
    reply: Mapping[str, Any],
    host_memory_bytes: int | None = None,
    host_pids_limit: int | None = None,
) -> ContainerSample:
    """Map one stats reply to a sample; precpu_stats is ignored.

    One-shot replies zero precpu_stats, so utilization comes from the
    tracker's own previous sample. A malformed field leaves that field None
    and adds a ``stats_parse`` error.

    Raises:
        ContainerGoneError: the reply is that of a container not running.
    """
    if reply.get("read") == _ZERO_TIME:
        raise ContainerGoneError(f"container {container.id} is not running")

    sample = ContainerSample()
    problems: list[str] = []

    def field(*keys: str) -> int | None:
        try:
            return _counter(reply, *keys)
        except StatsParseError as error:
            problems.append(str(error))
            return None

    total = field("cpu_stats", "cpu_usage", "total_usage")
    system = field("cpu_stats", "system_cpu_usage")
    try:
        online = _online_cpus(reply)
    except StatsParseError as error:
        problems.append(str(error))
        online = None
    if total is not None:
        sample.cpu_usage_seconds = total / 1e9
    if system is not None and online:
        # system_cpu_usage sums the time of all online CPUs.
        sample.cpu_clock_seconds = system / online / 1e9
    throttled = field("cpu_stats", "throttling_data", "throttled_time")
    if throttled is not None:
        sample.cpu_throttled_seconds = throttled / 1e9
    sample.cpu_limit_cores = cpu_limit_from_info(container, online)

    usage = field("memory_stats", "usage")
    sample.memory_usage_bytes = usage
    # cgroup v1 replies carry total_inactive_file, counting child cgroups as
    # usage does; v2 replies have only inactive_file, which is hierarchical.
    inactive_key = "inactive_file"
    if _path(reply, "memory_stats", "stats", "total_inactive_file") is not _MISSING:
        inactive_key = "total_inactive_file"
    inactive = field("memory_stats", "stats", inactive_key)
    if usage is not None and inactive is not None:
        sample.memory_working_set_bytes = max(usage - inactive, 0)
    limit = field("memory_stats", "limit")
    sample.memory_limit_bytes = _effective(limit, host_memory_bytes)

    sample.pids = field("pids_stats", "current")
    sample.pids_limit = _effective(field("pids_stats", "limit"), host_pids_limit)

    if problems:
        sample.errors[StatsParseError.kind] = "; ".join(problems)
    return sample


def _effective(limit: int | None, host_limit: int | None) -> int | None:
    # Absent, 0 and "unlimited" all mean the host's own capacity.
    if limit is None or limit == 0 or limit >= _UNLIMITED:
        return host_limit
    if host_limit is not None:
        return min(limit, host_limit)
    return limit


class StatsApiReader:
    """Read samples through the Docker stats API, several containers at once.

    ``host_memory_bytes`` and ``host_pids_limit`` are the engine host's
    capacity: ``docker info`` MemTotal and the kernel's pid limit. Without
    them, an unlimited memory or pids limit is reported as unknown.
    """

    name = "api"

    def __init__(
        self,
        client: StatsClient,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        host_memory_bytes: int | None = None,
        host_pids_limit: int | None = None,
    ) -> None:
        if timeout <= 0 or max_concurrent < 1:
            raise ValueError(
                f"invalid stats reader settings timeout={timeout!r} "
                f"max_concurrent={max_concurrent!r}; expected a positive timeout "
                "and at least 1 concurrent request"
            )
        self.client = client
        self.timeout = timeout
        self.max_concurrent = max_concurrent
        self.host_memory_bytes = host_memory_bytes
        self.host_pids_limit = host_pids_limit

    def read(self, container: ContainerInfo) -> ContainerSample:
        """Read one container; a failed request gives a sample with an error.

        Raises:
            ContainerGoneError: the container no longer exists or stopped.
        """
        try:
            reply = self.client.stats(container.id)
        except ContainerGoneError:
            raise
        except Exception as error:  # the client's own error family varies
            logger.debug("stats of container %s failed: %s", container.id, error)
            # Timeouts of the socket, of requests and of a client wrapper all
            # carry "Timeout" in their class name.
            timed_out = isinstance(error, TimeoutError) or (
                "timeout" in type(error).__name__.lower()
            )
            kind = "stats_timeout" if timed_out else "stats_read"
            return ContainerSample(
                errors={kind: f"stats of container {container.id} failed: {error}"}
            )
        if not isinstance(reply, Mapping):
            return ContainerSample(
                errors={
                    StatsParseError.kind: (
                        f"stats reply of container {container.id} is "
                        f"{type(reply).__name__}, expected a JSON object"
                    )
                }
            )
        return sample_from_stats(
            container, reply, self.host_memory_bytes, self.host_pids_limit
        )

    def read_all(
        self, containers: Sequence[ContainerInfo]
    ) -> dict[str, ContainerSample]:
        """Read containers in parallel; gone ones are left out.

        A container whose request takes longer than ``timeout`` after it
        started gets a sample with no values and a ``stats_timeout`` error.
        A request still queued once every earlier batch has had its full
        timeout, ``timeout`` times the number of batches, times out as well,
        so one read_all takes at most that long.
        """
        if not containers:
            return {}
        started: dict[str, float] = {}
        lock = threading.Lock()

        def timed_read(container: ContainerInfo) -> ContainerSample:
            with lock:
                started[container.id] = time.monotonic()
            return self.read(container)

        batches = math.ceil(len(containers) / self.max_concurrent)
        deadline = time.monotonic() + self.timeout * batches
        samples: dict[str, ContainerSample] = {}
        executor = ThreadPoolExecutor(
            max_workers=min(self.max_concurrent, len(containers)),
            thread_name_prefix="warden-stats",
        )
        try:
            futures = {executor.submit(timed_read, c): c for c in containers}
            pending: set[Future[ContainerSample]] = set(futures)
            while pending:
                now = time.monotonic()
                for future in list(pending):
                    container = futures[future]
                    with lock:
                        begun = started.get(container.id)
                    expired = now >= deadline or (
                        begun is not None and now >= begun + self.timeout
                    )
                    if expired and not future.done():
                        pending.discard(future)
                        future.cancel()
                        samples[container.id] = self._timed_out(container)
                if not pending:
                    break
                with lock:
                    ends = [
                        started[futures[f].id] + self.timeout
                        for f in pending
                        if futures[f].id in started
                    ]
                wake = min([deadline, *ends]) - time.monotonic()
                done, pending = wait(
                    pending, timeout=max(wake, 0.001), return_when=FIRST_COMPLETED
                )
                for future in done:
                    container = futures[future]
                    try:
                        samples[container.id] = future.result()
                    except ContainerGoneError as error:
                        logger.debug("skipping container %s: %s", container.id, error)
        finally:
            # A hung request keeps its thread until the client's own socket
            # timeout; the scrape does not wait for it.
            executor.shutdown(wait=False, cancel_futures=True)
        return samples

    def _timed_out(self, container: ContainerInfo) -> ContainerSample:
        logger.debug(
            "stats of container %s timed out after %s s", container.id, self.timeout
        )
        return ContainerSample(
            errors={
                "stats_timeout": (
                    f"stats of container {container.id} timed out after "
                    f"{self.timeout} s; raise the timeout or use --source=cgroup"
                )
            }
        )
