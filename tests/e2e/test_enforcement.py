"""Each violation kills its container through the real pipeline.

One stack (exporter, enforcer, Prometheus, Alertmanager, each a real
process) runs the faster policy. The four abusive containers and the three
that must survive start together, and the tests check the audit log.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest

from deploy.credentials import read_token
from deploy.events import EventsClient, first_actions
from deploy.stack import Stack, executable
from deploy.workloads import (
    SURVIVORS,
    VIOLATIONS,
    Started,
    Workload,
    is_running,
    remove_workloads,
    start_workloads,
)
from tests.e2e.conftest import (
    E2E_LABEL,
    FAST_INTERVAL_SECONDS,
    PREFIX,
    RUN,
    check_evaluations_follow_scrapes,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

KILL_TIMEOUT_SECONDS = 90.0


@dataclass
class Outcome:
    """What the stack did to each workload of one run."""

    started: dict[str, Started]
    records: list[dict[str, Any]]
    actions: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def outcome(fast_stack: Stack, e2e_docker: docker.DockerClient) -> Iterator[Outcome]:
    """Start every workload at once and collect the audit records."""
    settings = fast_stack.settings
    events = EventsClient(
        settings.url("enforcer"),
        read_token(settings.state),
        since=datetime.now(UTC) - timedelta(seconds=1),
    )
    started = start_workloads(
        e2e_docker,
        (*VIOLATIONS, *SURVIVORS),
        PREFIX,
        labels={E2E_LABEL: RUN},
    )
    records: list[dict[str, Any]] = []
    try:
        expected = {item.id for item in started if item.workload.violation}
        deadline = time.monotonic() + KILL_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            fast_stack.check_children()
            records.extend(events.new_records())
            if expected <= set(first_actions(records)):
                break
            time.sleep(0.5)
        # Survivors get several more evaluations in which to be wrongly hit.
        time.sleep(5 * settings.scrape_interval_seconds)
        records.extend(events.new_records())
        yield Outcome(
            started={item.workload.key: item for item in started},
            records=records,
            actions=first_actions(records),
        )
    finally:
        remove_workloads(started)


@pytest.mark.parametrize("workload", VIOLATIONS, ids=lambda w: w.key)
def test_violation_kills_its_container(outcome: Outcome, workload: Workload) -> None:
    item = outcome.started[workload.key]
    record = outcome.actions.get(item.id)
    assert record is not None, f"no action on {item.name}: {outcome.records}"
    assert record["result"] == "killed"
    assert record["violation"] == workload.violation
    assert record["container_name"] == item.name
    assert not is_running(item)


@pytest.mark.parametrize("workload", SURVIVORS, ids=lambda w: w.key)
def test_survivor_keeps_running(outcome: Outcome, workload: Workload) -> None:
    item = outcome.started[workload.key]
    assert item.id not in outcome.actions, outcome.actions.get(item.id)
    assert is_running(item)


def test_audit_records_name_the_alert(outcome: Outcome) -> None:
    for record in outcome.actions.values():
        assert record["alert"]["fingerprint"], record
        assert record["alert"]["labels"]["action"] == "kill", record
        assert record["alert"]["annotations"]["runbook_url"], record


def test_fast_evaluations_follow_scrapes(fast_stack: Stack) -> None:
    check_evaluations_follow_scrapes(fast_stack, FAST_INTERVAL_SECONDS)


def test_audit_chain_verifies(fast_stack: Stack, outcome: Outcome) -> None:
    result = subprocess.run(
        [
            executable("warden-enforcer"),
            "verify-audit",
            str(fast_stack.settings.audit_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert outcome.records, "the run wrote no audit record"
    assert result.returncode == 0, result.stdout + result.stderr
