"""The collector with the real engine, discovery and cgroup reader."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from prometheus_client import CollectorRegistry

from exporter.cgroup import CgroupReader
from exporter.collector import ContainerCollector
from exporter.cpu import CpuUtilizationTracker
from exporter.discovery import Discovery
from exporter.docker_api import DockerApi, EventStream
from exporter.model import ContainerInfo
from tests.conftest import RunContainer
from tests.exporter.fakes import FakeDiscovery, scrape_registry, series_of, value_of
from tests.services import require, wait_until

pytestmark = pytest.mark.docker


class CountingDockerApi(DockerApi):
    """The real Docker API access, counting the calls that reach the engine.

    ``threads`` names the thread of each call, because discovery inspects
    containers of other users of the shared engine whenever they change.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.threads: list[str] = []

    def _count(self, call: str) -> None:
        self.calls.append(call)
        self.threads.append(threading.current_thread().name)

    def running_containers(self) -> list[ContainerInfo]:
        self._count("list")
        return super().running_containers()

    def inspect(self, container_id: str) -> ContainerInfo | None:
        self._count("inspect")
        return super().inspect(container_id)

    def events(self, since: float, until: float) -> EventStream:
        self._count("events")
        return super().events(since, until)

    def stats(self, container_id: str) -> dict[str, Any]:
        self._count("stats")
        return super().stats(container_id)


@pytest.fixture
def reader(docker_client: docker.DockerClient) -> CgroupReader:
    reader = CgroupReader()
    reason = reader.probe()
    require(reason is None, f"cgroup files are not readable here: {reason}")
    return reader


@pytest.fixture
def counting_api(docker_client: docker.DockerClient) -> Iterator[CountingDockerApi]:
    api = CountingDockerApi()
    yield api
    api.close()


def test_scrapes_make_no_docker_calls(
    counting_api: CountingDockerApi,
    reader: CgroupReader,
    run_container: RunContainer,
) -> None:
    containers = [run_container("sleep 3600") for _ in range(3)]
    discovery = Discovery(counting_api, resync_interval=600)
    discovery.start()
    try:
        ids = {container.id for container in containers}
        wait_until(lambda: ids <= {info.id for info in discovery.containers()})
        registry = CollectorRegistry()
        registry.register(
            ContainerCollector(discovery, reader, CpuUtilizationTracker())
        )
        calls_before = len(counting_api.calls)
        for _ in range(5):
            values = scrape_registry(registry)
        scrape_threads = counting_api.threads[calls_before:]
    finally:
        discovery.stop()
    assert threading.current_thread().name not in scrape_threads
    for container_id in ids:
        assert value_of(values, "docker_container_pids", id=container_id) == 1


def test_container_removed_after_listing(
    docker_client: docker.DockerClient,
    reader: CgroupReader,
    run_container: RunContainer,
) -> None:
    kept, removed, stopped = (run_container("sleep 3600") for _ in range(3))
    api = DockerApi()
    try:
        infos = {info.id: info for info in api.running_containers()}
    finally:
        api.close()
    # Discovery listed all three; one is removed and one stops before the
    # scrape reads their files.
    removed.remove(force=True)
    stopped.kill()
    stopped.wait()
    listed = [infos[kept.id], infos[removed.id], infos[stopped.id]]
    registry = CollectorRegistry()
    registry.register(
        ContainerCollector(FakeDiscovery(listed), reader, CpuUtilizationTracker())
    )
    values = scrape_registry(registry)
    assert value_of(values, "docker_container_pids", id=kept.id) == 1
    for gone in (removed.id, stopped.id):
        assert (
            series_of(values, "docker_container_cpu_usage_seconds_total", id=gone) == {}
        )
        assert series_of(values, "docker_container_memory_usage_bytes", id=gone) == {}
        assert series_of(values, "docker_container_info", id=gone) == {}
    assert value_of(values, "warden_exporter_errors_total", kind="read") == 0
