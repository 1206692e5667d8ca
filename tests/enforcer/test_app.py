"""Endpoints of the app besides the webhook's decisions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from enforcer.decisions import own_container_ids
from enforcer.metrics import EnforcerMetrics
from tests.conftest import RunContainer
from tests.enforcer.harness import TOKEN, Harness, make_alert, make_notification

pytestmark = pytest.mark.docker

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ID_A = "a" * 64
ID_B = "b" * 64


@pytest.fixture
def harness(tmp_path: Path, docker_client: object) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def test_healthz_needs_no_token(harness: Harness) -> None:
    response = harness.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok\n"


def test_readyz_ready_with_docker_and_log(harness: Harness) -> None:
    response = harness.client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"ready": True}


def test_readyz_unready_without_docker(tmp_path: Path) -> None:
    harness = Harness(tmp_path, docker_host=f"unix://{tmp_path}/none.sock")
    response = harness.client.get("/readyz")
    harness.close()
    assert response.status_code == 503
    assert response.json["problems"][0].startswith("docker:")
    assert harness.sample("warden_enforcer_docker_up") == 0.0


def test_readyz_unready_without_audit_log(harness: Harness) -> None:
    harness.audit_path.unlink()
    response = harness.client.get("/readyz")
    assert response.status_code == 503
    assert response.json["problems"][0].startswith("audit:")


def test_metrics_need_no_token(harness: Harness) -> None:
    response = harness.client.get("/metrics")
    assert response.status_code == 200
    assert "warden_enforcer_docker_up" in response.get_data(as_text=True)


def test_requests_counted_by_code(harness: Harness) -> None:
    harness.post(make_notification(), token="wrong")
    harness.post(make_notification())
    assert harness.sample("warden_enforcer_requests_total", {"code": "401"}) == 1.0
    assert harness.sample("warden_enforcer_requests_total", {"code": "200"}) == 1.0


def _kill_cpu_or_other(line: str) -> bool:
    # The family has 60 series at 0 from the start. The test compares the
    # ones of one action and violation, and the folded "other" series.
    if line.startswith(
        (
            "# HELP warden_enforcer_actions_total ",
            "# TYPE warden_enforcer_actions_total ",
        )
    ):
        return True
    if not line.startswith("warden_enforcer_actions_total{"):
        return False
    if 'action="other"' in line:
        return True
    return 'action="kill"' in line and 'violation="cpu_spike"' in line


def test_exposition_of_decision_counter() -> None:
    registry = CollectorRegistry()
    metrics = EnforcerMetrics(registry)
    metrics.count_decision("kill", "cpu_spike", "killed")
    metrics.count_decision("$(reboot)", "made_up", "skipped_invalid")
    text = generate_latest(registry).decode()
    family = [line for line in text.splitlines() if _kill_cpu_or_other(line)]
    assert family == [
        "# HELP warden_enforcer_actions_total Decisions on alerts, by requested "
        "action, violation and result.",
        "# TYPE warden_enforcer_actions_total counter",
        'warden_enforcer_actions_total{action="kill",result="killed",'
        'violation="cpu_spike"} 1.0',
        'warden_enforcer_actions_total{action="kill",result="dry_run",'
        'violation="cpu_spike"} 0.0',
        'warden_enforcer_actions_total{action="kill",result="error",'
        'violation="cpu_spike"} 0.0',
        'warden_enforcer_actions_total{action="kill",result="rate_limited",'
        'violation="cpu_spike"} 0.0',
        'warden_enforcer_actions_total{action="other",result="skipped_invalid",'
        'violation="other"} 1.0',
    ]


@pytest.mark.parametrize(
    "action, acted", [("kill", "killed"), ("stop", "stopped"), ("pause", "paused")]
)
def test_action_results_published_at_zero(action: str, acted: str) -> None:
    registry = CollectorRegistry()
    EnforcerMetrics(registry)
    violations = ("cpu_spike", "memory_spike", "fork_bomb", "combined_anomaly")
    for violation in (*violations, "other"):
        for result in (acted, "dry_run", "error", "rate_limited"):
            labels = {"action": action, "violation": violation, "result": result}
            value = registry.get_sample_value("warden_enforcer_actions_total", labels)
            assert value == 0.0, labels


def test_other_results_appear_on_first_use() -> None:
    registry = CollectorRegistry()
    EnforcerMetrics(registry)
    labels = {"action": "kill", "violation": "cpu_spike", "result": "duplicate"}
    value = registry.get_sample_value("warden_enforcer_actions_total", labels)
    assert value is None


@pytest.mark.parametrize(
    "code", ["200", "400", "401", "404", "405", "413", "415", "500", "503"]
)
def test_response_codes_published_at_zero(code: str) -> None:
    registry = CollectorRegistry()
    EnforcerMetrics(registry)
    value = registry.get_sample_value("warden_enforcer_requests_total", {"code": code})
    assert value == 0.0


def test_unlabelled_counters_start_at_zero() -> None:
    registry = CollectorRegistry()
    EnforcerMetrics(registry)
    for name in (
        "warden_enforcer_audit_errors_total",
        "warden_enforcer_truncated_alerts_total",
    ):
        assert registry.get_sample_value(name) == 0.0, name


def test_response_carries_request_id(harness: Harness) -> None:
    response = harness.post(make_notification(make_alert(ID_A, status="resolved")))
    request_id = response.headers["X-Request-Id"]
    assert response.json["request_id"] == request_id
    assert harness.records()[0]["request_id"] == request_id


def test_body_at_limit_accepted(tmp_path: Path, docker_client: object) -> None:
    harness = Harness(tmp_path, max_body_bytes=4096)
    payload = make_notification(make_alert(ID_A, status="resolved"))
    payload["pad"] = ""
    size = len(json.dumps(payload))
    payload["pad"] = "x" * (4096 - size)
    at_limit = harness.post(payload)
    payload["pad"] += "x"
    over_limit = harness.post(payload)
    harness.close()
    assert at_limit.status_code == 200
    assert over_limit.status_code == 413


def test_events_newest_first(harness: Harness) -> None:
    first = make_alert(ID_A, status="resolved")
    second = make_alert(ID_B, status="resolved")
    harness.post(make_notification(first))
    harness.post(make_notification(second))
    response = harness.client.get("/events", headers=AUTH)
    keys = [event["alert"]["fingerprint"] for event in response.json["events"]]
    assert response.status_code == 200
    assert keys == [second["fingerprint"], first["fingerprint"]]


def test_events_filter_by_container(harness: Harness) -> None:
    harness.post(make_notification(make_alert(ID_A, status="resolved")))
    harness.post(make_notification(make_alert(ID_B, status="resolved")))
    response = harness.client.get(f"/events?container={ID_B}", headers=AUTH)
    ids = [event["container_id"] for event in response.json["events"]]
    assert ids == [ID_B]


def test_events_limit_and_since(harness: Harness) -> None:
    for _ in range(3):
        harness.post(make_notification(make_alert(ID_A, status="resolved")))
    limited = harness.client.get("/events?limit=2", headers=AUTH)
    future = harness.client.get("/events?since=2999-01-01T00:00:00Z", headers=AUTH)
    assert len(limited.json["events"]) == 2
    assert future.json["events"] == []


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=ten", "limit=100000", "since=yesterday"]
)
def test_events_bad_query_is_400(harness: Harness, query: str) -> None:
    response = harness.client.get(f"/events?{query}", headers=AUTH)
    assert response.status_code == 400


def test_no_token_configured_accepts_loopback(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    container = run_container()
    harness = Harness(tmp_path, token=None)
    response = harness.post(make_notification(make_alert(container.id)), token=None)
    harness.close()
    assert response.status_code == 200
    assert harness.results() == ["killed"]


def test_token_never_in_audit_log(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    harness.post(make_notification(make_alert(container.id)))
    harness.post(make_notification(make_alert(container.id)), token="wrong")
    assert TOKEN not in harness.audit_path.read_text()


def write_proc(tmp_path: Path, cgroup: str, mountinfo: str) -> Path:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "cgroup").write_text(cgroup)
    (tmp_path / "self" / "mountinfo").write_text(mountinfo)
    return tmp_path


def test_own_id_from_cgroupfs_path(tmp_path: Path) -> None:
    proc = write_proc(tmp_path, f"12:pids:/docker/{ID_A}\n0::/docker/{ID_A}\n", "")
    assert own_container_ids(proc) == {ID_A}


def test_own_id_from_systemd_scope(tmp_path: Path) -> None:
    proc = write_proc(tmp_path, f"0::/system.slice/docker-{ID_B}.scope\n", "")
    assert own_container_ids(proc) == {ID_B}


def test_own_id_from_mountinfo(tmp_path: Path) -> None:
    # cgroup v2 with a private cgroup namespace shows only "0::/".
    mount = (
        f"612 590 8:1 /var/lib/docker/containers/{ID_A}/hostname /etc/hostname "
        "rw,relatime - ext4 /dev/sda1 rw\n"
    )
    proc = write_proc(tmp_path, "0::/\n", mount)
    assert own_container_ids(proc) == {ID_A}


def test_host_shm_mounts_not_own(tmp_path: Path) -> None:
    # On the host, mountinfo lists every container's shm mount.
    mount = (
        f"700 29 0:52 / /var/lib/docker/containers/{ID_A}/mounts/shm "
        "rw,nosuid - tmpfs shm rw,size=65536k\n"
    )
    proc = write_proc(tmp_path, "0::/init.scope\n1:name=systemd:/\n", mount)
    assert own_container_ids(proc) == frozenset()


def test_token_never_logged(
    harness: Harness, run_container: RunContainer, caplog: pytest.LogCaptureFixture
) -> None:
    container = run_container()
    caplog.set_level("DEBUG")
    harness.post(make_notification(make_alert(container.id)))
    harness.post(make_notification(make_alert(container.id)), token="wrong")
    harness.client.get("/events", headers=AUTH)
    assert caplog.records
    assert TOKEN not in caplog.text
