"""Fakes of the exporter's Docker interface and readers, for edge cases.

The main paths run against a real engine. These fakes drive the cases a
real engine cannot produce on demand, such as name quirks, races between
list and read, and an engine that goes away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.model import ContainerGoneError, ContainerInfo, ContainerSample

HEX_A = "a" * 64
HEX_B = "b" * 64
HEX_C = "c" * 64


def make_info(container_id: str, name: str, **fields: Any) -> ContainerInfo:
    """Return a ContainerInfo with plausible defaults for the unset fields."""
    defaults: dict[str, Any] = {
        "image": "busybox:latest",
        "image_id": "sha256:" + "0" * 64,
        "labels": {},
        "pid": 4242,
        "started_at": 1_700_000_000.0,
    }
    return ContainerInfo(id=container_id, name=name, **{**defaults, **fields})


def make_sample(usage: float = 1.0, clock: float = 100.0) -> ContainerSample:
    """Return a sample with every field set."""
    return ContainerSample(
        cpu_usage_seconds=usage,
        cpu_clock_seconds=clock,
        cpu_throttled_seconds=0.25,
        cpu_limit_cores=0.5,
        memory_usage_bytes=8_388_608,
        memory_working_set_bytes=4_194_304,
        memory_limit_bytes=268_435_456,
        memory_oom_kills=0,
        pids=3,
        pids_limit=100,
    )


class FakeDiscovery:
    """A fixed list of containers, changed by the test between scrapes."""

    def __init__(self, containers: Sequence[ContainerInfo] = ()) -> None:
        self.items = list(containers)
        self.up = True
        self.api_errors = 0

    def containers(self) -> list[ContainerInfo]:
        return list(self.items)


class FakeSource:
    """A source that returns set samples and treats listed IDs as gone."""

    name = "cgroup"

    def __init__(self) -> None:
        self.samples: dict[str, ContainerSample] = {}
        self.gone: set[str] = set()
        self.clock = 100.0
        self.reads = 0

    def read(self, container: ContainerInfo) -> ContainerSample:
        self.reads += 1
        if container.id in self.gone:
            raise ContainerGoneError(container.id)
        self.clock += 1.0
        sample = self.samples.get(container.id) or make_sample()
        sample.cpu_clock_seconds = self.clock
        return sample

    def read_all(
        self, containers: Sequence[ContainerInfo]
    ) -> dict[str, ContainerSample]:
        samples = {}
        for container in containers:
            try:
                samples[container.id] = self.read(container)
            except ContainerGoneError:
                continue
        return samples


def scrape_registry(registry: CollectorRegistry) -> dict[tuple[str, frozenset], float]:
    """Collect a registry into {(sample name, labels): value}."""
    values = {}
    for metric in registry.collect():
        for sample in metric.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            values[key] = sample.value
    return values


def parse_exposition(text: str) -> dict[tuple[str, frozenset], float]:
    """Parse Prometheus text format into {(sample name, labels): value}."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            values[key] = sample.value
    return values


def series_of(
    values: dict[tuple[str, frozenset], float], metric: str, /, **labels: str
) -> dict[frozenset, float]:
    """Return the series of ``metric`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return {
        key_labels: value
        for (sample_name, key_labels), value in values.items()
        if sample_name == metric and wanted <= key_labels
    }


def value_of(
    values: dict[tuple[str, frozenset], float], metric: str, /, **labels: str
) -> float | None:
    """Return the one value of ``metric`` with ``labels``, or None if absent."""
    found = series_of(values, metric, **labels)
    assert len(found) <= 1, f"{metric}{labels} matches {len(found)} series"
    return next(iter(found.values()), None)
