"""The real components the suite depends on are present and respond."""

from __future__ import annotations

import docker

from tests.conftest import RunContainer
from tests.services import ServerFactory, http_get


def test_engine_runs_container_without_network(
    docker_client: docker.DockerClient, run_container: RunContainer
) -> None:
    container = run_container("sleep 30")
    container.reload()
    assert container.status == "running"
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"


def test_prometheus_and_alertmanager_start(servers: ServerFactory) -> None:
    prometheus = servers.prometheus({"global": {"scrape_interval": "5s"}})
    alertmanager = servers.alertmanager(
        {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
    )
    assert http_get(prometheus.url + "/-/healthy")[0] == 200
    assert http_get(alertmanager.url + "/-/healthy")[0] == 200
