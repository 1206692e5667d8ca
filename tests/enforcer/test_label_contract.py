"""Alerts act only with labels inside the contract; others are skipped_invalid."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import RunContainer
from tests.enforcer.harness import Harness, make_alert, make_notification

pytestmark = pytest.mark.docker


@pytest.fixture
def harness(tmp_path: Path, docker_client: object) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def status_of(container: docker.models.containers.Container) -> str:
    container.reload()
    return str(container.status)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"violation": "whatever"}, "label violation='whatever'"),
        ({"severity": "info"}, "label severity='info'"),
        ({"severity": "Critical"}, "label severity='Critical'"),
        ({"violation": "cpu_spike "}, "label violation='cpu_spike '"),
    ],
)
def test_label_outside_contract_not_acted_on(
    harness: Harness,
    run_container: RunContainer,
    labels: dict[str, str],
    expected: str,
) -> None:
    container = run_container()
    alert = make_alert(container.id)
    alert["labels"].update(labels)
    harness.post(make_notification(alert))
    record = harness.records()[0]
    assert record["result"] == "skipped_invalid"
    assert record["reason"].startswith(expected)
    assert status_of(container) == "running"


@pytest.mark.parametrize("label", ["violation", "severity"])
def test_missing_contract_label_not_acted_on(
    harness: Harness, run_container: RunContainer, label: str
) -> None:
    container = run_container()
    alert = make_alert(container.id)
    del alert["labels"][label]
    harness.post(make_notification(alert))
    record = harness.records()[0]
    assert record["result"] == "skipped_invalid"
    assert f"no {label} label" in record["reason"]
    assert status_of(container) == "running"


@pytest.mark.parametrize(
    "violation", ["cpu_spike", "memory_spike", "fork_bomb", "combined_anomaly"]
)
def test_every_contract_violation_acted_on(
    harness: Harness, run_container: RunContainer, violation: str
) -> None:
    container = run_container()
    harness.post(make_notification(make_alert(container.id, violation=violation)))
    assert harness.results() == ["killed"]


def test_invalid_label_reason_shortened_and_escaped(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    alert = make_alert(container.id, violation="\x1b[31m" + "x" * 500 + "\x00")
    harness.post(make_notification(alert))
    reason = harness.records()[0]["reason"]
    assert "\\x1b[31m" in reason
    assert "\x1b" not in reason
    assert "\x00" not in reason
    assert len(reason) < 200


def test_unknown_violation_counted_as_other(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    harness.post(make_notification(make_alert(container.id, violation="whatever")))
    other = {"action": "kill", "violation": "other", "result": "skipped_invalid"}
    copied = {"action": "kill", "violation": "whatever", "result": "skipped_invalid"}
    assert harness.sample("warden_enforcer_actions_total", other) == 1.0
    assert (
        harness.registry.get_sample_value("warden_enforcer_actions_total", copied)
        is None
    )
