"""A background sampler of CPU usage counters, so utilization is fresh.

Without it, utilization is measured between two scrapes: after a load
starts, the first scrape covers a partly loaded interval, and a new
container has no value before its second scrape. The sampler reads only
the CPU usage counter of every known container each ``interval`` seconds.
A scrape then publishes the utilization between the sampler's two latest
reads, which ended at most about one interval earlier.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from exporter.cpu import CpuUtilizationTracker
from exporter.model import ContainerGoneError, ContainerInfo, ContainerSample

log = logging.getLogger(__name__)

# A read this soon after the previous one, in sample intervals, is skipped
# and the previous read stays the baseline. A few milliseconds of a
# container throttled by its CFS quota (100 ms periods by default) show
# either no CPU or a full core, so such an interval gives a wrong value.
MIN_INTERVAL_FRACTION = 0.5

# A value is dropped once its interval ended this many sample intervals ago,
# for example while the sampler thread is stalled. Three leaves room for a
# tick delayed by a slow scrape without publishing a stale value.
STALE_AFTER_INTERVALS = 3


class CpuCounterSource(Protocol):
    """A source that reads a container's CPU usage counter alone."""

    def read_cpu(self, container: ContainerInfo) -> ContainerSample:
        """Return a sample with only the CPU usage and its clock set.

        Raises:
            ContainerGoneError: the container no longer exists or stopped.
        """
        ...


@dataclass(frozen=True)
class _Latest:
    cores: float
    measured_at: float  # the sampler's clock when the interval ended


class CpuSampler:
    """Read the CPU usage counter of every known container on a fixed period.

    Args:
        containers: returns the containers to sample, such as discovery's
            cache.
        source: reads one container's CPU usage counter.
        interval: seconds between two reads of each container.
        clock: monotonic clock in seconds, for the age of each value.

    Discovery, the sampler's thread and concurrent scrapes may call it at
    once. Reads of the counters take turns, so that the tracker gets each
    container's reads in the order they were taken.
    """

    def __init__(
        self,
        containers: Callable[[], Sequence[ContainerInfo]],
        source: CpuCounterSource,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"sample interval {interval} s must be above 0")
        self.containers = containers
        self.source = source
        self.interval = interval
        self.max_age = STALE_AFTER_INTERVALS * interval
        self.clock = clock
        self._tracker = CpuUtilizationTracker()
        self._reading = threading.Lock()
        self._lock = threading.Lock()
        self._latest: dict[str, _Latest] = {}
        self._read_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._behind = False
        self._failing = False

    def cores(
        self, container_id: str, scraped: ContainerSample | None = None
    ) -> float | None:
        """Return the CPU cores used between the two latest reads, if fresh.

        ``scraped`` is the scrape's own read of the container. It counts only
        for a container that has a baseline but no value yet, such as one
        that started less than an interval ago: its first value then spans
        the baseline to the scrape, provided that is at least half an
        interval, instead of waiting for the next tick.

        Returns None when the container has fewer than two reads, its
        counter went down, its last read failed, or the value is older than
        ``max_age`` seconds.
        """
        with self._lock:
            latest = self._latest.get(container_id)
        if latest is None and scraped is not None:
            with self._reading:
                if container_id in self._read_at:
                    self._record(container_id, scraped)
            with self._lock:
                latest = self._latest.get(container_id)
        if latest is None:
            return None
        age = self.clock() - latest.measured_at
        if age > self.max_age:
            log.debug(
                "CPU utilization of container %s is %.1f s old, over %.1f s; "
                "not publishing it",
                container_id,
                age,
                self.max_age,
            )
            return None
        return latest.cores

    def sample(self, container: ContainerInfo) -> None:
        """Read one container's counter and update its utilization."""
        with self._reading:
            try:
                reading = self.source.read_cpu(container)
            except ContainerGoneError as error:
                log.debug("not sampling container %s: %s", container.id, error)
                self._drop(container.id)
                return
            self._record(container.id, reading)
        for kind, message in reading.errors.items():
            # The scrape reads the same counter, and counts and logs its errors.
            log.debug(
                "sampling container %s failed: %s %s", container.id, kind, message
            )

    def _record(self, container_id: str, reading: ContainerSample) -> None:
        # The caller must have acquired self._reading. A read older than the
        # latest one, or too soon after it, is skipped by _too_soon.
        if self._too_soon(container_id, reading):
            return
        utilization = self._tracker.update(container_id, reading)
        now = self.clock()
        with self._lock:
            if utilization is None:
                self._latest.pop(container_id, None)
            else:
                self._latest[container_id] = _Latest(utilization.cores, now)

    def _too_soon(self, container_id: str, reading: ContainerSample) -> bool:
        # The caller must have acquired self._reading.
        clock = reading.cpu_clock_seconds
        if clock is None or reading.cpu_usage_seconds is None:
            return False
        previous = self._read_at.get(container_id)
        if previous is not None and clock - previous < (
            MIN_INTERVAL_FRACTION * self.interval
        ):
            return True
        self._read_at[container_id] = clock
        return False

    def add(self, container: ContainerInfo) -> None:
        """Take a baseline read of a container that just started.

        Discovery calls this from its own thread, so that the first tick at
        least half an interval later gives a value. An error is logged and
        never raised.
        """
        try:
            self.sample(container)
        except Exception:
            log.exception("baseline read of container %s failed", container.id)

    def tick(self) -> None:
        """Sample every container once and drop state of the ones that left."""
        for container in self.containers():
            self.sample(container)
        # A fresh list keeps a container that discovery added during the
        # tick, whose baseline add() has just taken.
        self.retain({container.id for container in self.containers()})

    def forget(self, container_id: str) -> None:
        """Drop everything known about a container that was removed."""
        with self._reading:
            self._drop(container_id)

    def _drop(self, container_id: str) -> None:
        # The caller must have acquired self._reading.
        self._tracker.forget(container_id)
        self._read_at.pop(container_id, None)
        with self._lock:
            self._latest.pop(container_id, None)

    def retain(self, container_ids: set[str]) -> None:
        """Drop everything known about containers not in ``container_ids``."""
        with self._reading:
            self._tracker.retain(container_ids)
            for container_id in set(self._read_at) - container_ids:
                del self._read_at[container_id]
        with self._lock:
            for container_id in set(self._latest) - container_ids:
                del self._latest[container_id]

    def start(self) -> None:
        """Take a first round of reads, then start the thread that repeats it."""
        self._tick_safely()
        self._thread = threading.Thread(
            target=self._run, name="warden-cpu-sampler", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        log.info("sampling CPU usage every %s s", self.interval)
        due = self.clock() + self.interval
        while not self._stop.wait(max(due - self.clock(), 0.0)):
            started = self.clock()
            self._tick_safely()
            finished = self.clock()
            due += self.interval
            if due < finished:
                # The tick overran the next due time, so the missed ticks
                # are dropped and the next one starts at once.
                self._fell_behind(finished - started)
                due = finished
            elif self._behind:
                log.info("CPU sampler keeps up with its interval again")
                self._behind = False

    def _tick_safely(self) -> None:
        try:
            self.tick()
        except Exception:
            # The thread outlives a bug in one tick; utilization goes stale
            # and unpublished until the ticks succeed again.
            if not self._failing:
                log.exception("CPU sampler tick failed; retrying every tick")
            self._failing = True
            return
        if self._failing:
            log.info("CPU sampler tick succeeded again")
        self._failing = False

    def _fell_behind(self, duration: float) -> None:
        if self._behind:
            return
        self._behind = True
        log.warning(
            "CPU sampler tick took %.3f s, longer than its interval of %s s; "
            "values older than %s s are not published, so raise "
            "--cpu.sample-interval if this repeats",
            duration,
            self.interval,
            self.max_age,
        )
