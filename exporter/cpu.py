"""CPU utilization of each container, from two consecutive samples."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

from exporter.model import ContainerSample

logger = logging.getLogger(__name__)


def utilization_ratio(cores: float | None, limit: float | None) -> float | None:
    """Divide ``cores`` by the CPU limit; None when either is unknown or 0."""
    if cores is None or limit is None or limit <= 0:
        return None
    return cores / limit


@dataclass(frozen=True)
class CpuUtilization:
    """CPU use over the interval between two reads of one container."""

    cores: float  # CPU-seconds used per second of the interval
    ratio: float | None  # cores divided by the CPU limit; None without a limit


@dataclass(frozen=True)
class _Baseline:
    usage_seconds: float
    clock_seconds: float


class CpuUtilizationTracker:
    """Keep the previous sample of each container and compute utilization.

    The first sample of a container is only a baseline, because a counter
    read once gives the lifetime average, not current use. A counter that
    went down (the container restarted under the same ID) or a clock that
    did not advance gives no value and the new sample becomes the baseline.
    Safe to call from several threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._baselines: dict[str, _Baseline] = {}

    def update(
        self, container_id: str, sample: ContainerSample
    ) -> CpuUtilization | None:
        """Record ``sample`` and return the utilization since the previous one.

        Returns None when the value is unknown: no previous sample, a counter
        reset, a clock that did not advance, or CPU fields missing from
        ``sample``. A sample without CPU fields keeps the old baseline, so the
        next complete sample spans the whole gap.
        """
        usage = sample.cpu_usage_seconds
        clock = sample.cpu_clock_seconds
        if usage is None or clock is None:
            return None

        with self._lock:
            previous = self._baselines.get(container_id)
            self._baselines[container_id] = _Baseline(usage, clock)
        if previous is None:
            return None

        used = usage - previous.usage_seconds
        elapsed = clock - previous.clock_seconds
        if used < 0:
            logger.debug(
                "CPU counter of container %s went down from %s to %s s; "
                "taking the new read as baseline",
                container_id,
                previous.usage_seconds,
                usage,
            )
            return None
        if elapsed <= 0:
            logger.debug(
                "CPU clock of container %s did not advance (%s s); "
                "taking the new read as baseline",
                container_id,
                elapsed,
            )
            return None

        cores = used / elapsed
        if not math.isfinite(cores):
            return None
        return CpuUtilization(
            cores=cores, ratio=utilization_ratio(cores, sample.cpu_limit_cores)
        )

    def forget(self, container_id: str) -> None:
        """Drop the baseline of a container that was removed."""
        with self._lock:
            self._baselines.pop(container_id, None)

    def retain(self, container_ids: set[str]) -> None:
        """Drop the baselines of every container not in ``container_ids``."""
        with self._lock:
            for container_id in set(self._baselines) - container_ids:
                del self._baselines[container_id]
