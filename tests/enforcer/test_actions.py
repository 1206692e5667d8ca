"""Kill, stop and pause act on real containers, by full ID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunContainer
from tests.enforcer.harness import Harness, make_alert, make_notification

pytestmark = pytest.mark.docker


@pytest.fixture
def harness(tmp_path: Path, docker_client: object) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_kill_leaves_container_exited(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    response = harness.post(make_notification(make_alert(container.id)))
    container.reload()
    assert response.status_code == 200
    assert harness.results() == ["killed"]
    assert container.status == "exited"
    # SIGKILL gives exit code 137.
    assert container.attrs["State"]["ExitCode"] == 137


def test_stop_sends_sigterm_first(
    harness: Harness, run_container: RunContainer
) -> None:
    # The shell exits with 143 on SIGTERM, so the code shows which signal won.
    container = run_container("trap 'exit 143' TERM; while true; do sleep 0.1; done")
    response = harness.post(make_notification(make_alert(container.id, action="stop")))
    container.reload()
    assert response.status_code == 200
    assert harness.results() == ["stopped"]
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 143


def test_stop_kills_after_grace_period(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container("trap '' TERM; while true; do sleep 0.1; done")
    response = harness.post(make_notification(make_alert(container.id, action="stop")))
    container.reload()
    assert response.status_code == 200
    assert harness.results() == ["stopped"]
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 137


def test_pause_freezes_container(harness: Harness, run_container: RunContainer) -> None:
    container = run_container()
    response = harness.post(make_notification(make_alert(container.id, action="pause")))
    container.reload()
    assert response.status_code == 200
    assert harness.results() == ["paused"]
    assert container.status == "paused"


def test_record_has_usage_and_metadata(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container(name=f"warden-usage-{id(harness)}")
    harness.post(make_notification(make_alert(container.id, name="ignored")))
    record = harness.records()[0]
    assert record["container_id"] == container.id
    # The name comes from Docker, not from the alert's label.
    assert record["container_name"] == container.name
    assert record["image"] == "warden-busybox:latest"
    assert record["usage"]["pids"] >= 1
    assert record["usage"]["memory_bytes"] > 0
    assert record["usage"]["cpu_seconds"] >= 0
    assert record["duration_seconds"] > 0
    assert record["time"].endswith("Z")


def test_action_counted_in_metrics(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    harness.post(make_notification(make_alert(container.id)))
    labels = {"action": "kill", "violation": "cpu_spike", "result": "killed"}
    assert harness.sample("warden_enforcer_actions_total", labels) == 1.0
    assert harness.sample("warden_enforcer_action_duration_seconds_count") == 1.0
    assert harness.sample("warden_enforcer_docker_up") == 1.0


def test_kill_of_paused_container(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    container.pause()
    response = harness.post(make_notification(make_alert(container.id)))
    container.reload()
    assert response.status_code == 200
    assert harness.results() == ["killed"]
    assert container.status == "exited"
