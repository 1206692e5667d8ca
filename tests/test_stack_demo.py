"""Helpers of the demo and the audit reader, without a running stack."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.config import StackSettings
from deploy.credentials import CredentialsError, read_token
from deploy.demo import DemoError, check_name_filter, run_demo
from deploy.events import first_actions
from deploy.state_lock import StateLock
from deploy.workloads import parse_docker_time


def test_name_filter_mismatch_is_rejected(tmp_path: Path) -> None:
    settings = StackSettings(state=tmp_path, name_regex="^sandbox-")
    with pytest.raises(DemoError) as raised:
        check_name_filter(settings, "warden-demo-")
    assert "WARDEN_DEMO_PREFIX" in str(raised.value)
    assert "'^sandbox-'" in str(raised.value)


def test_name_filter_match_is_accepted(tmp_path: Path) -> None:
    check_name_filter(StackSettings(state=tmp_path, name_regex="demo"), "warden-demo-")
    check_name_filter(StackSettings(state=tmp_path), "anything-")


def test_docker_time_keeps_microseconds() -> None:
    parsed = parse_docker_time("2026-12-04T14:21:59.786123456Z")
    assert parsed == datetime(2026, 12, 4, 14, 21, 59, 786123, tzinfo=UTC)


def test_docker_time_without_fraction() -> None:
    parsed = parse_docker_time("2026-12-04T14:21:59Z")
    assert parsed == datetime(2026, 12, 4, 14, 21, 59, tzinfo=UTC)


def test_first_actions_skip_decisions_without_action() -> None:
    records = [
        {"container_id": "a", "result": "skipped_protected"},
        {"container_id": "a", "result": "killed", "time": "first"},
        {"container_id": "a", "result": "killed", "time": "second"},
        {"container_id": "b", "result": "rate_limited"},
    ]
    actions = first_actions(records)
    assert set(actions) == {"a"}
    assert actions["a"]["time"] == "first"


def test_missing_token_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as raised:
        read_token(tmp_path)
    assert str(tmp_path / "token") in str(raised.value)
    assert "make up" in str(raised.value)


def test_second_demo_rejected(tmp_path: Path) -> None:
    settings = StackSettings(state=tmp_path)
    running = StateLock(tmp_path, file_name="demo.lock")
    running.acquire()
    try:
        with pytest.raises(DemoError) as raised:
            run_demo(settings, "warden-demo-", timeout=1)
    finally:
        running.release()
    assert "in use by another demo" in str(raised.value)
    assert "wait until it ends" in str(raised.value)
