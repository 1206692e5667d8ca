"""Who can reach what on a running stack: Alertmanager and Prometheus' API.

A user on the host reaches every port on 127.0.0.1. Alertmanager must ask
for its password, Prometheus must refuse to stop over HTTP, and an alert
posted with the password for a container outside the name filter must not
touch it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest

from deploy.credentials import (
    basic_auth_header,
    read_alertmanager_password,
    read_token,
)
from deploy.events import EventsClient
from deploy.stack import Stack
from tests.e2e.conftest import E2E_LABEL, RUN
from tests.services import http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

# Starts like the guarded names of this run but is outside the filter.
OUTSIDE_NAME = f"warden-outside-{RUN}"


def request(
    url: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> int:
    """Send a request to loopback and return the status code."""
    data = None if body is None else json.dumps(body).encode()
    prepared = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(prepared, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def kill_alert(container_id: str, name: str) -> list[dict[str, Any]]:
    """Return an Alertmanager v2 alert that requests a kill of one container."""
    return [
        {
            "labels": {
                "alertname": "ContainerCPUSpike",
                "action": "kill",
                "violation": "cpu_spike",
                "severity": "critical",
                "id": container_id,
                "name": name,
            },
            "annotations": {"summary": "posted by hand"},
        }
    ]


@pytest.fixture
def outsider(e2e_docker: docker.DockerClient) -> Iterator[Any]:
    """Run a container of this run whose name is outside the stack's filter."""
    container = e2e_docker.containers.run(
        "warden-busybox:latest",
        ["sh", "-c", "sleep 3600"],
        name=OUTSIDE_NAME,
        detach=True,
        network_mode="none",
        labels={E2E_LABEL: RUN},
    )
    yield container
    container.remove(force=True)


def alertmanager_url(stack: Stack) -> str:
    return stack.settings.url("alertmanager")


def test_alertmanager_rejects_post_without_password(fast_stack: Stack) -> None:
    status = request(
        f"{alertmanager_url(fast_stack)}/api/v2/alerts",
        method="POST",
        body=kill_alert("0" * 64, "anything"),
    )
    assert status == 401


@pytest.mark.parametrize("path", ["/-/ready", "/api/v2/status", "/"])
def test_alertmanager_reads_need_password(fast_stack: Stack, path: str) -> None:
    status = request(f"{alertmanager_url(fast_stack)}{path}")
    assert status == 401


def test_alertmanager_rejects_wrong_password(fast_stack: Stack) -> None:
    status = request(
        f"{alertmanager_url(fast_stack)}/api/v2/status",
        headers={"Authorization": basic_auth_header("not-the-password")},
    )
    assert status == 401


def test_alertmanager_answers_with_password(fast_stack: Stack) -> None:
    password = read_alertmanager_password(fast_stack.settings.state)
    status = request(
        f"{alertmanager_url(fast_stack)}/api/v2/status",
        headers={"Authorization": basic_auth_header(password)},
    )
    assert status == 200


def test_prometheus_scrapes_alertmanager_with_password(fast_stack: Stack) -> None:
    query = urllib.parse.urlencode({"query": 'up{job="alertmanager"}'})
    url = f"{fast_stack.settings.url('prometheus')}/api/v1/query?{query}"

    def up() -> bool:
        status, body = http_get(url)
        result = json.loads(body)["data"]["result"] if status == 200 else []
        return bool(result) and result[0]["value"][1] == "1"

    wait_until(up, timeout=30, message="Prometheus to scrape Alertmanager")


@pytest.mark.parametrize("path", ["/-/quit", "/-/reload"])
def test_prometheus_rejects_lifecycle_calls(fast_stack: Stack, path: str) -> None:
    base = fast_stack.settings.url("prometheus")
    status = request(f"{base}{path}", method="POST")
    ready, _ = http_get(f"{base}/-/ready")
    assert status == 403
    assert ready == 200


def test_injected_alert_outside_filter_is_skipped(
    fast_stack: Stack, outsider: Any
) -> None:
    settings = fast_stack.settings
    events = EventsClient(
        settings.url("enforcer"),
        read_token(settings.state),
        since=datetime.now(UTC) - timedelta(seconds=1),
    )
    password = read_alertmanager_password(settings.state)
    status = request(
        f"{alertmanager_url(fast_stack)}/api/v2/alerts",
        method="POST",
        body=kill_alert(outsider.id, OUTSIDE_NAME),
        headers={"Authorization": basic_auth_header(password)},
    )
    records: list[dict[str, Any]] = []

    def decided() -> bool:
        records.extend(
            record
            for record in events.new_records()
            if record.get("container_id") == outsider.id
        )
        return bool(records)

    wait_until(decided, timeout=30, message="the enforcer to decide on the alert")
    # One more group interval, in which a wrong kill would show.
    time.sleep(2 * settings.group_interval_seconds)
    outsider.reload()
    assert status == 200
    assert records[0]["result"] == "skipped_protected", records
    assert "outside the guarded set" in records[0]["reason"], records
    assert outsider.status == "running"
