"""The HTTP server in process: metrics, landing page, health and 404."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from exporter.collector import ContainerCollector
from exporter.cpu import CpuUtilizationTracker
from exporter.http import make_app, make_http_server
from tests.exporter.fakes import (
    HEX_A,
    FakeDiscovery,
    FakeSource,
    make_info,
    parse_exposition,
    value_of,
)
from tests.services import http_get


@pytest.fixture
def base_url() -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(
        ContainerCollector(
            FakeDiscovery([make_info(HEX_A, "web")]),
            FakeSource(),
            CpuUtilizationTracker(),
        )
    )
    app = make_app(registry, "/custom/metrics", "cgroup")
    server = make_http_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_metrics_on_telemetry_path(base_url: str) -> None:
    status, body = http_get(base_url + "/custom/metrics")
    assert status == 200
    values = parse_exposition(body)
    assert value_of(values, "docker_container_pids", id=HEX_A) == 3


def test_openmetrics_request_gets_text(base_url: str) -> None:
    accept = (
        "application/openmetrics-text;version=1.0.0,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    request = urllib.request.Request(
        base_url + "/custom/metrics", headers={"Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        content_type = response.headers["Content-Type"]
        body = response.read().decode()
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "# EOF" not in body


def test_landing_page_links_metrics(base_url: str) -> None:
    status, body = http_get(base_url + "/")
    assert status == 200
    assert '<a href="/custom/metrics">' in body
    assert "cgroup files" in body


def test_healthz_answers_ok(base_url: str) -> None:
    assert http_get(base_url + "/healthz") == (200, "ok\n")


def test_unknown_path_is_404(base_url: str) -> None:
    status, _ = http_get(base_url + "/metrics")
    assert status == 404


def test_parallel_scrapes_all_succeed(base_url: str) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(http_get, [base_url + "/custom/metrics"] * 40))
    assert [status for status, _ in replies] == [200] * 40
    for _, body in replies:
        assert value_of(parse_exposition(body), "warden_exporter_containers") == 1


def test_busy_address_raises_oserror(base_url: str) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        make_http_server("127.0.0.1", port, make_app(CollectorRegistry(), "/m", "api"))
