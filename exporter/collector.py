"""The Prometheus collector that turns container samples into metrics.

Sample output for one container (values shortened)::

    docker_container_cpu_usage_seconds_total{id="4f1c…",name="web"} 12.5
    docker_container_cpu_limit_cores{id="4f1c…",name="web"} 0.5
    docker_container_memory_working_set_bytes{id="4f1c…",name="web"} 1.1e+07
    docker_container_info{compose_project="",compose_service="",id="4f1c…",
        image="busybox",image_id="sha256:…",name="web",protected="false"} 1.0
    warden_exporter_docker_up 1.0
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.cpu import CpuUtilizationTracker, utilization_ratio
from exporter.model import ContainerInfo, ContainerSample, SampleSource

log = logging.getLogger(__name__)

CONTAINER_LABELS = ("id", "name")
INFO_LABELS = (
    "id",
    "name",
    "image",
    "image_id",
    "compose_project",
    "compose_service",
    "protected",
)
# Error kinds the collector itself counts, exposed at 0 from the start so
# that rate() works on the first error.
COLLECTOR_ERROR_KINDS = ("docker_api", "read")

_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


class UtilizationSource(Protocol):
    """The part of the CPU sampler that the collector reads."""

    def cores(
        self, container_id: str, scraped: ContainerSample | None = None
    ) -> float | None: ...


class ContainerSource(Protocol):
    """The part of discovery that the collector reads."""

    @property
    def up(self) -> bool: ...

    api_errors: int

    def containers(self) -> list[ContainerInfo]: ...


def allowlist_label_name(container_label: str) -> str:
    """Return the info-metric label name for an allowlisted container label.

    Characters that Prometheus does not allow in label names become ``_``
    and the result gets the prefix ``label_``, as in kube-state-metrics, so
    ``com.example.team`` becomes ``label_com_example_team``.
    """
    return "label_" + _INVALID_LABEL_CHARS.sub("_", container_label)


class ContainerCollector(Collector):
    """Collect the metrics of every running container and of the exporter.

    One collection runs at a time, because concurrent scrapes wait for each
    other. Without a sampler the CPU tracker therefore gets the scrapes'
    reads in order, with an interval above 0. With a sampler the scrapes'
    reads reach it only for a container that has no value yet, and only at
    least half a sample interval after its previous read, because a read a
    few milliseconds after the sampler's would measure a short, noisy
    interval.

    Args:
        discovery: the cache of running containers.
        source: reads resource use, from cgroup files or the stats API.
        tracker: turns two CPU reads of consecutive scrapes into utilization.
        label_allowlist: container labels copied onto ``docker_container_info``.
        timer: clock in seconds for the collection's duration.
        sampler: when given, the source of CPU utilization in place of
            ``tracker``.
    """

    def __init__(
        self,
        discovery: ContainerSource,
        source: SampleSource,
        tracker: CpuUtilizationTracker,
        label_allowlist: Sequence[str] = (),
        timer: Callable[[], float] = time.perf_counter,
        sampler: UtilizationSource | None = None,
    ) -> None:
        self.discovery = discovery
        self.source = source
        self.tracker = tracker
        self.sampler = sampler
        self.label_allowlist = tuple(label_allowlist)
        self.timer = timer
        self._allowlist_names = tuple(
            allowlist_label_name(label) for label in self.label_allowlist
        )
        self._lock = threading.Lock()
        self._errors: dict[str, int] = dict.fromkeys(COLLECTOR_ERROR_KINDS, 0)
        self._logged: set[tuple[str, str]] = set()
        self._known_ids: set[str] = set()

    def describe(self) -> Iterable[Metric]:
        """Describe nothing, so registering the collector runs no collection."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Read every container and yield fresh metric families."""
        with self._lock:
            started = self.timer()
            families = ContainerFamilies(self._allowlist_names)
            containers = self.discovery.containers()
            samples = self._read(containers)
            for container in containers:
                sample = samples.get(container.id)
                if sample is not None:
                    self._add_container(families, container, sample)
            self._forget_removed({container.id for container in containers})
            duration = self.timer() - started
            metrics = [
                *families.containers(),
                *self._exporter_families(len(families.ids), duration),
            ]
        yield from metrics

    def _read(self, containers: list[ContainerInfo]) -> dict[str, ContainerSample]:
        if not containers:
            return {}
        try:
            return self.source.read_all(containers)
        except Exception:
            # The scrape boundary: the exporter's own metrics still go out.
            log.exception("reading %d containers failed", len(containers))
            self._errors["read"] += 1
            return {}

    def _add_container(
        self,
        families: ContainerFamilies,
        container: ContainerInfo,
        sample: ContainerSample,
    ) -> None:
        for kind, message in sample.errors.items():
            self._count_error(container.id, kind, message)
        ratio = self._utilization_ratio(container.id, sample)
        allowlisted = [container.labels.get(key, "") for key in self.label_allowlist]
        families.add(container, sample, ratio, allowlisted)

    def _utilization_ratio(
        self, container_id: str, sample: ContainerSample
    ) -> float | None:
        if self.sampler is not None:
            cores = self.sampler.cores(container_id, scraped=sample)
            return utilization_ratio(cores, sample.cpu_limit_cores)
        utilization = self.tracker.update(container_id, sample)
        return utilization.ratio if utilization is not None else None

    def _count_error(self, container_id: str, kind: str, message: str) -> None:
        self._errors[kind] = self._errors.get(kind, 0) + 1
        if (container_id, kind) in self._logged:
            return
        self._logged.add((container_id, kind))
        # An error that persists is counted on every scrape but logged once,
        # until the container goes away.
        log.warning("read error %s for container %s: %s", kind, container_id, message)

    def _forget_removed(self, running: set[str]) -> None:
        for container_id in self._known_ids - running:
            self.tracker.forget(container_id)
        self._known_ids = running
        self._logged = {entry for entry in self._logged if entry[0] in running}

    def _exporter_families(self, containers: int, duration: float) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "warden_exporter_collect_duration_seconds",
            "Time the last collection of container metrics took, in seconds.",
            value=duration,
        )
        yield GaugeMetricFamily(
            "warden_exporter_containers",
            "Number of containers that the last collection published.",
            value=containers,
        )
        yield GaugeMetricFamily(
            "warden_exporter_docker_up",
            "Whether the last call to the Docker API succeeded (1) or not (0).",
            value=1 if self.discovery.up else 0,
        )
        errors = CounterMetricFamily(
            "warden_exporter_errors_total",
            "Errors while reading containers or calling the Docker API, by kind.",
            labels=("kind",),
        )
        counts = {**self._errors}
        counts["docker_api"] += self.discovery.api_errors
        for kind in sorted(counts):
            errors.add_metric([kind], counts[kind])
        yield errors


class ContainerFamilies:
    """The per-container metric families of one collection."""

    def __init__(self, allowlist_names: Sequence[str]) -> None:
        self.ids: list[str] = []
        labels = CONTAINER_LABELS
        self.cpu_usage = CounterMetricFamily(
            "docker_container_cpu_usage_seconds_total",
            "CPU time the container used, user plus system, in seconds.",
            labels=labels,
        )
        self.cpu_limit = GaugeMetricFamily(
            "docker_container_cpu_limit_cores",
            "Effective CPU limit in cores: quota over period, else the cpuset "
            "size, else the host's online CPUs.",
            labels=labels,
        )
        self.cpu_utilization = GaugeMetricFamily(
            "docker_container_cpu_utilization_ratio",
            "CPU used between the two latest reads, divided by the elapsed time "
            "and the CPU limit.",
            labels=labels,
        )
        self.cpu_throttled = CounterMetricFamily(
            "docker_container_cpu_throttled_seconds_total",
            "Time the container was throttled by its CFS quota, in seconds.",
            labels=labels,
        )
        self.memory_usage = GaugeMetricFamily(
            "docker_container_memory_usage_bytes",
            "Memory charged to the container's cgroup, page cache included.",
            labels=labels,
        )
        self.memory_working_set = GaugeMetricFamily(
            "docker_container_memory_working_set_bytes",
            "Memory usage minus inactive file cache, floored at 0, in bytes.",
            labels=labels,
        )
        self.memory_limit = GaugeMetricFamily(
            "docker_container_memory_limit_bytes",
            "Effective memory limit: the cgroup limit, or the host's memory "
            "when unlimited.",
            labels=labels,
        )
        self.oom_kills = CounterMetricFamily(
            "docker_container_memory_oom_kills_total",
            "Processes killed by the kernel OOM killer in the container's cgroup.",
            labels=labels,
        )
        self.pids = GaugeMetricFamily(
            "docker_container_pids",
            "Tasks in the container's cgroup, processes and threads.",
            labels=labels,
        )
        self.pids_limit = GaugeMetricFamily(
            "docker_container_pids_limit",
            "Effective limit of tasks: pids.max, or the host's limit when unlimited.",
            labels=labels,
        )
        self.start_time = GaugeMetricFamily(
            "docker_container_start_time_seconds",
            "Unix time the container last started, in seconds.",
            labels=labels,
        )
        self.info = GaugeMetricFamily(
            "docker_container_info",
            "Metadata of a running container; the value is always 1.",
            labels=(*INFO_LABELS, *allowlist_names),
        )

    def add(
        self,
        container: ContainerInfo,
        sample: ContainerSample,
        utilization_ratio: float | None,
        allowlisted: Sequence[str],
    ) -> None:
        """Add the series of one container; unknown values get no series."""
        self.ids.append(container.id)
        key = [container.id, container.name]
        values: list[tuple[GaugeMetricFamily | CounterMetricFamily, float | None]] = [
            (self.cpu_usage, sample.cpu_usage_seconds),
            (self.cpu_limit, sample.cpu_limit_cores),
            (self.cpu_utilization, utilization_ratio),
            (self.cpu_throttled, sample.cpu_throttled_seconds),
            (self.memory_usage, sample.memory_usage_bytes),
            (self.memory_working_set, sample.memory_working_set_bytes),
            (self.memory_limit, sample.memory_limit_bytes),
            (self.oom_kills, sample.memory_oom_kills),
            (self.pids, sample.pids),
            (self.pids_limit, sample.pids_limit),
            (self.start_time, container.started_at or None),
        ]
        for family, value in values:
            if value is not None:
                family.add_metric(key, value)
        self.info.add_metric(
            [
                container.id,
                container.name,
                container.image,
                container.image_id,
                container.compose_project,
                container.compose_service,
                "true" if container.protected else "false",
                *allowlisted,
            ],
            1,
        )

    def containers(self) -> Iterator[Metric]:
        """Yield the families in a fixed order."""
        yield self.cpu_usage
        yield self.cpu_limit
        yield self.cpu_utilization
        yield self.cpu_throttled
        yield self.memory_usage
        yield self.memory_working_set
        yield self.memory_limit
        yield self.oom_kills
        yield self.pids
        yield self.pids_limit
        yield self.start_time
        yield self.info
