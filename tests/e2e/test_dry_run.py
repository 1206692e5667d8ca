"""With --dry-run the pipeline decides and records but kills nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from deploy.credentials import read_token
from deploy.events import EventsClient, first_actions
from deploy.stack import Stack
from deploy.workloads import FORK_BOMB, is_running, remove_workloads, start_workloads
from tests.e2e.conftest import (
    E2E_LABEL,
    FAST_INTERVAL_SECONDS,
    PREFIX,
    RUN,
    render_fast_rules,
    require_stack_binaries,
    stack_settings,
)

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

DECISION_TIMEOUT_SECONDS = 60.0


def test_dry_run_records_without_killing(
    tmp_path: Path, e2e_docker: docker.DockerClient
) -> None:
    require_stack_binaries()
    settings = stack_settings(
        tmp_path / "state",
        [render_fast_rules(tmp_path)],
        FAST_INTERVAL_SECONDS,
        dry_run=True,
    )
    records: list[dict[str, Any]] = []
    with Stack(settings) as stack:
        stack.start()
        events = EventsClient(
            settings.url("enforcer"),
            read_token(settings.state),
            since=datetime.now(UTC) - timedelta(seconds=1),
        )
        (item,) = start_workloads(
            e2e_docker, [FORK_BOMB], f"{PREFIX}dry-", labels={E2E_LABEL: RUN}
        )
        try:
            deadline = time.monotonic() + DECISION_TIMEOUT_SECONDS
            while time.monotonic() < deadline and item.id not in first_actions(records):
                stack.check_children()
                records.extend(events.new_records())
                time.sleep(0.5)
            running = is_running(item)
        finally:
            remove_workloads([item])

    record = first_actions(records).get(item.id)
    assert record is not None, f"no decision on {item.name}: {records}"
    assert record["result"] == "dry_run"
    assert record["violation"] == "fork_bomb"
    assert running
