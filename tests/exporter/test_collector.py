"""The collector against fixed discovery data and a fake source."""

from __future__ import annotations

import logging
import threading

import pytest
from prometheus_client import CollectorRegistry

from exporter.collector import ContainerCollector, allowlist_label_name
from exporter.cpu import CpuUtilizationTracker
from exporter.model import ContainerSample
from tests.exporter.fakes import (
    HEX_A,
    HEX_B,
    HEX_C,
    FakeDiscovery,
    FakeSource,
    make_info,
    make_sample,
    scrape_registry,
    series_of,
    value_of,
)


def build(
    discovery: FakeDiscovery, source: FakeSource, allowlist: tuple[str, ...] = ()
) -> tuple[CollectorRegistry, ContainerCollector, CpuUtilizationTracker]:
    tracker = CpuUtilizationTracker()
    collector = ContainerCollector(discovery, source, tracker, allowlist)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return registry, collector, tracker


def test_two_scrapes_in_a_row_succeed() -> None:
    registry, _, _ = build(FakeDiscovery([make_info(HEX_A, "a")]), FakeSource())
    first = scrape_registry(registry)
    second = scrape_registry(registry)
    assert value_of(first, "docker_container_pids", id=HEX_A) == 3
    assert value_of(second, "docker_container_pids", id=HEX_A) == 3


def test_collector_on_two_registries_scrapes() -> None:
    registry, collector, _ = build(FakeDiscovery([]), FakeSource())
    # Registration describes nothing, so a second registry accepts the same
    # collector and scrapes of both still work.
    other = CollectorRegistry()
    other.register(collector)
    assert value_of(scrape_registry(other), "warden_exporter_containers") == 0
    assert value_of(scrape_registry(registry), "warden_exporter_containers") == 0


def test_series_carry_only_id_and_name() -> None:
    registry, _, _ = build(FakeDiscovery([make_info(HEX_A, "a")]), FakeSource())
    values = scrape_registry(registry)
    for (name, labels), _ in values.items():
        if name.startswith("docker_container_") and name != "docker_container_info":
            assert {key for key, _ in labels} == {"id", "name"}, name


def test_container_gone_between_list_and_read() -> None:
    source = FakeSource()
    source.gone = {HEX_B, HEX_C}
    discovery = FakeDiscovery(
        [make_info(HEX_A, "a"), make_info(HEX_B, "b"), make_info(HEX_C, "c")]
    )
    registry, _, _ = build(discovery, source)
    values = scrape_registry(registry)
    assert value_of(values, "docker_container_pids", id=HEX_A) == 3
    for gone in (HEX_B, HEX_C):
        assert (
            series_of(values, "docker_container_cpu_usage_seconds_total", id=gone) == {}
        )
        assert series_of(values, "docker_container_memory_usage_bytes", id=gone) == {}
        assert series_of(values, "docker_container_info", id=gone) == {}
    assert value_of(values, "warden_exporter_containers") == 1
    assert value_of(values, "warden_exporter_errors_total", kind="read") == 0


def test_gone_container_read_once_per_scrape() -> None:
    source = FakeSource()
    source.gone = {HEX_B}
    registry, _, _ = build(FakeDiscovery([make_info(HEX_B, "b")]), source)
    scrape_registry(registry)
    assert source.reads == 1


def test_unknown_fields_get_no_series() -> None:
    source = FakeSource()
    source.samples[HEX_A] = ContainerSample(
        pids=2, errors={"cgroup_parse": "memory.usage_in_bytes: 'abc'"}
    )
    registry, _, _ = build(FakeDiscovery([make_info(HEX_A, "a")]), source)
    values = scrape_registry(registry)
    assert value_of(values, "docker_container_pids", id=HEX_A) == 2
    assert value_of(values, "docker_container_memory_usage_bytes", id=HEX_A) is None
    assert (
        value_of(values, "docker_container_cpu_usage_seconds_total", id=HEX_A) is None
    )
    assert value_of(values, "warden_exporter_errors_total", kind="cgroup_parse") == 1


def test_read_errors_counted_per_scrape() -> None:
    source = FakeSource()
    source.samples[HEX_A] = ContainerSample(pids=2, errors={"stats_timeout": "slow"})
    registry, _, _ = build(FakeDiscovery([make_info(HEX_A, "a")]), source)
    scrape_registry(registry)
    values = scrape_registry(registry)
    assert value_of(values, "warden_exporter_errors_total", kind="stats_timeout") == 2


def test_failing_source_keeps_exporter_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenSource(FakeSource):
        def read_all(self, containers: object) -> dict[str, ContainerSample]:
            raise RuntimeError("reader bug")

    registry, _, _ = build(FakeDiscovery([make_info(HEX_A, "a")]), BrokenSource())
    with caplog.at_level(logging.ERROR):
        values = scrape_registry(registry)
    assert value_of(values, "warden_exporter_errors_total", kind="read") == 1
    assert value_of(values, "warden_exporter_containers") == 0
    assert "reading 1 containers failed" in caplog.text


def test_first_read_has_no_utilization() -> None:
    registry, _, _ = build(FakeDiscovery([make_info(HEX_A, "a")]), FakeSource())
    values = scrape_registry(registry)
    assert value_of(values, "docker_container_cpu_utilization_ratio", id=HEX_A) is None


def test_utilization_from_two_reads() -> None:
    source = FakeSource()
    registry, _, _ = build(FakeDiscovery([make_info(HEX_A, "a")]), source)
    source.samples[HEX_A] = make_sample(usage=10.0)
    scrape_registry(registry)
    # One second later (the fake clock advances 1 s per read) with 0.25 s
    # more CPU: 0.25 cores busy of a 0.5 core limit.
    source.samples[HEX_A] = make_sample(usage=10.25)
    values = scrape_registry(registry)
    ratio = value_of(values, "docker_container_cpu_utilization_ratio", id=HEX_A)
    assert ratio == pytest.approx(0.5)


def test_concurrent_scrapes_are_serialised() -> None:
    source = FakeSource()
    infos = [make_info(f"{index:064x}", f"c{index}") for index in range(20)]
    registry, _, _ = build(FakeDiscovery(infos), source)
    failures: list[BaseException] = []
    results: list[float | None] = []

    def scrape() -> None:
        try:
            for _ in range(20):
                values = scrape_registry(registry)
                results.append(value_of(values, "warden_exporter_containers"))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert results == [20.0] * 160
    assert source.reads == 20 * 160


def test_recreated_name_keeps_one_series() -> None:
    discovery = FakeDiscovery()
    source = FakeSource()
    registry, _, tracker = build(discovery, source)
    for index in range(100):
        discovery.items = [make_info(f"{index:064x}", "web")]
        values = scrape_registry(registry)
        series = series_of(values, "docker_container_pids", name="web")
        assert list(series) == [
            frozenset({("id", f"{index:064x}"), ("name", "web")})
        ], index
    assert len(tracker._baselines) == 1


def test_removed_container_leaves_no_series() -> None:
    discovery = FakeDiscovery([make_info(HEX_A, "web")])
    registry, _, _ = build(discovery, FakeSource())
    scrape_registry(registry)
    discovery.items = [make_info(HEX_B, "web")]
    second = scrape_registry(registry)
    discovery.items = []
    third = scrape_registry(registry)
    assert series_of(second, "docker_container_info", id=HEX_A) == {}
    assert len(series_of(second, "docker_container_info", name="web")) == 1
    assert series_of(third, "docker_container_info", name="web") == {}
    assert series_of(third, "docker_container_pids", name="web") == {}


def test_info_metric_labels() -> None:
    info = make_info(
        HEX_A,
        "web",
        labels={
            "com.docker.compose.project": "shop",
            "com.docker.compose.service": "api",
            "warden.protect": "true",
            "com.example.team": "payments",
            "secret.token": "hidden",
        },
    )
    registry, _, _ = build(
        FakeDiscovery([info]), FakeSource(), allowlist=("com.example.team", "owner")
    )
    values = scrape_registry(registry)
    [labels] = series_of(values, "docker_container_info", id=HEX_A)
    found = dict(labels)
    assert found["compose_project"] == "shop"
    assert found["compose_service"] == "api"
    assert found["protected"] == "true"
    assert found["label_com_example_team"] == "payments"
    assert found["label_owner"] == ""
    assert "secret.token" not in str(found)


def test_allowlist_label_name_is_sanitised() -> None:
    assert (
        allowlist_label_name("com.example/team-name") == "label_com_example_team_name"
    )


def test_docker_down_reported() -> None:
    discovery = FakeDiscovery([make_info(HEX_A, "a")])
    discovery.up = False
    discovery.api_errors = 3
    registry, _, _ = build(discovery, FakeSource())
    values = scrape_registry(registry)
    assert value_of(values, "warden_exporter_docker_up") == 0
    assert value_of(values, "warden_exporter_errors_total", kind="docker_api") == 3
    assert value_of(values, "docker_container_pids", id=HEX_A) == 3


def test_read_error_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource()
    source.samples[HEX_A] = ContainerSample(pids=2, errors={"stats_read": "refused"})
    registry, _, _ = build(FakeDiscovery([make_info(HEX_A, "a")]), source)
    with caplog.at_level(logging.WARNING, logger="exporter.collector"):
        for _ in range(3):
            scrape_registry(registry)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert HEX_A in warnings[0]
    assert "stats_read" in warnings[0]
