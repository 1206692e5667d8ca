"""The committed policy, unchanged, kills a CPU spinner.

The stack scrapes and evaluates every 5 s and loads alerts/rules.yml as
committed. The default `for` of the CPU rule is 15 s, so the kill comes
about 15-30 s after the spinner starts. The test prints the figure, and
benchmarks/e2e_latency.py measures it over several runs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import docker
import pytest

from deploy.credentials import read_token
from deploy.events import EventsClient, first_actions
from deploy.stack import Stack
from deploy.workloads import (
    CPU_SPIKE,
    is_running,
    parse_docker_time,
    remove_workloads,
    start_workloads,
)
from tests.e2e.conftest import (
    E2E_LABEL,
    PREFIX,
    RUN,
    check_evaluations_follow_scrapes,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

# Far above the expected 15-30 s, so a slow host fails only when the
# pipeline is really broken.
KILL_TIMEOUT_SECONDS = 120.0


def test_default_evaluations_follow_scrapes(default_stack: Stack) -> None:
    check_evaluations_follow_scrapes(default_stack, 5.0)


def test_default_policy_kills_cpu_spinner(
    default_stack: Stack, e2e_docker: docker.DockerClient
) -> None:
    settings = default_stack.settings
    events = EventsClient(
        settings.url("enforcer"),
        read_token(settings.state),
        since=datetime.now(UTC) - timedelta(seconds=1),
    )
    (item,) = start_workloads(
        e2e_docker, [CPU_SPIKE], f"{PREFIX}default-", labels={E2E_LABEL: RUN}
    )
    records = []
    try:
        deadline = time.monotonic() + KILL_TIMEOUT_SECONDS
        while time.monotonic() < deadline and item.id not in first_actions(records):
            default_stack.check_children()
            records.extend(events.new_records())
            time.sleep(1.0)
        record = first_actions(records).get(item.id)
    finally:
        remove_workloads([item])

    assert record is not None, f"no action on {item.name}: {records}"
    assert record["result"] == "killed"
    assert record["violation"] == "cpu_spike"
    seconds = (parse_docker_time(record["time"]) - item.started_at).total_seconds()
    print(f"default policy killed the CPU spinner {seconds:.1f} s after its start")
    assert not is_running(item)
