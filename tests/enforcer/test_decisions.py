"""Each decision check against real containers, in the documented order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import RunContainer
from tests.enforcer.harness import (
    Harness,
    make_alert,
    make_notification,
    now_rfc3339,
)

pytestmark = pytest.mark.docker


@pytest.fixture
def harness(tmp_path: Path, docker_client: object) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def status_of(container: docker.models.containers.Container) -> str:
    container.reload()
    return str(container.status)


def test_removed_container_is_not_found(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    container.remove(force=True)
    response = harness.post(make_notification(make_alert(container.id)))
    assert response.status_code == 200
    assert harness.results() == ["not_found"]


def test_recreated_name_leaves_new_container(
    harness: Harness, run_container: RunContainer
) -> None:
    name = f"warden-recreated-{uuid.uuid4().hex[:8]}"
    old = run_container(name=name)
    alert = make_alert(old.id, name=name)
    old.remove(force=True)
    new = run_container(name=name)
    response = harness.post(make_notification(alert))
    assert response.status_code == 200
    assert harness.results() == ["not_found"]
    assert status_of(new) == "running"


def test_container_named_like_id_untouched(
    harness: Harness, run_container: RunContainer
) -> None:
    # Docker resolves a name when no ID matches, so a container named after a
    # removed container's ID must not be mistaken for it.
    old = run_container()
    old.remove(force=True)
    impostor = run_container(name=old.id)
    response = harness.post(make_notification(make_alert(old.id)))
    assert response.status_code == 200
    assert harness.results() == ["not_found"]
    assert status_of(impostor) == "running"


def test_exited_container_is_not_running(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container("exit 0")
    container.wait()
    harness.post(make_notification(make_alert(container.id)))
    record = harness.records()[0]
    assert record["result"] == "skipped_not_running"
    assert "exited" in record["reason"]


def test_pause_of_paused_is_skipped(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    container.pause()
    alert = make_alert(container.id, action="pause", name=container.name)
    harness.post(make_notification(alert))
    record = harness.records()[0]
    assert record["result"] == "skipped_not_running"
    assert record["reason"] == "already paused"


def test_protect_label_prevents_action(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container(labels={"warden.protect": "true"})
    harness.post(make_notification(make_alert(container.id)))
    assert harness.results() == ["skipped_protected"]
    assert status_of(container) == "running"


def test_role_label_prevents_action(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container(labels={"warden.role": "prometheus"})
    harness.post(make_notification(make_alert(container.id)))
    assert harness.results() == ["skipped_protected"]
    assert status_of(container) == "running"


def test_protect_flag_name_prevents_action(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    from enforcer.settings import parse_protect

    name = f"warden-protected-{uuid.uuid4().hex[:8]}"
    container = run_container(name=name)
    harness = Harness(tmp_path, protect=parse_protect([f"other,{name}"]))
    harness.post(make_notification(make_alert(container.id)))
    harness.close()
    assert harness.results() == ["skipped_protected"]
    assert status_of(container) == "running"


def test_protect_flag_selector_prevents_action(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    from enforcer.settings import parse_protect

    container = run_container(labels={"team": "infra"})
    harness = Harness(tmp_path, protect=parse_protect(["team=infra"]))
    harness.post(make_notification(make_alert(container.id)))
    harness.close()
    assert harness.results() == ["skipped_protected"]
    assert status_of(container) == "running"


def test_own_container_is_protected(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    from flask.testing import FlaskClient
    from prometheus_client import CollectorRegistry

    from enforcer.app import create_app
    from tests.enforcer.harness import TOKEN

    container = run_container()
    harness = Harness(tmp_path)
    app = create_app(
        harness.settings,
        harness.docker,
        harness.audit,
        CollectorRegistry(),
        own_ids=[container.id],
    )
    client: FlaskClient = app.test_client()
    client.post(
        "/webhook",
        json=make_notification(make_alert(container.id, name=container.name)),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    harness.close()
    record = harness.records()[0]
    assert record["result"] == "skipped_protected"
    assert record["reason"] == "the enforcer's own container"
    assert status_of(container) == "running"


def test_restarted_container_is_stale(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    alert = make_alert(container.id, starts_at=now_rfc3339())
    # StartedAt has nanoseconds, startsAt milliseconds: wait past both.
    time.sleep(0.05)
    container.restart(timeout=0)
    harness.post(make_notification(alert))
    assert harness.results() == ["skipped_stale"]
    assert status_of(container) == "running"


def test_alert_after_start_is_not_stale(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    harness.post(make_notification(make_alert(container.id, starts_at=now_rfc3339())))
    assert harness.results() == ["killed"]


def test_redelivery_is_recorded_duplicate(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    payload = make_notification(make_alert(container.id))
    first = harness.post(payload)
    second = harness.post(payload)
    assert first.status_code == 200
    assert second.status_code == 200
    # The container is dead by now, yet the re-delivery is a duplicate.
    assert harness.results() == ["killed", "duplicate"]


def test_restarted_enforcer_keeps_duplicates_out(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    container = run_container()
    payload = make_notification(make_alert(container.id))
    first = Harness(tmp_path)
    first.post(payload)
    first.close()
    container.start()

    second = Harness(tmp_path)
    second.post(payload)
    second.close()
    assert second.results() == ["killed", "duplicate"]
    assert status_of(container) == "running"


def test_rate_limit_skips_extra_actions(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    containers = [run_container() for _ in range(3)]
    harness = Harness(tmp_path, max_actions_per_minute=2)
    alerts = [make_alert(container.id) for container in containers]
    response = harness.post(make_notification(*alerts))
    harness.close()
    assert response.status_code == 200
    assert harness.results() == ["killed", "killed", "rate_limited"]
    assert status_of(containers[2]) == "running"
    labels = {"action": "kill", "violation": "cpu_spike", "result": "rate_limited"}
    assert harness.sample("warden_enforcer_actions_total", labels) == 1.0


def test_rate_limited_alert_is_retried(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    # A rate-limited decision is not final, so a re-delivery is decided
    # again (and acts once the window has room) instead of being a duplicate.
    busy, target = run_container(), run_container()
    harness = Harness(tmp_path, max_actions_per_minute=1)
    harness.post(make_notification(make_alert(busy.id)))
    payload = make_notification(make_alert(target.id))
    harness.post(payload)
    harness.post(payload)
    harness.close()
    assert harness.results() == ["killed", "rate_limited", "rate_limited"]
    assert status_of(target) == "running"


def test_dry_run_records_without_acting(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    container = run_container()
    harness = Harness(tmp_path, dry_run=True)
    harness.post(make_notification(make_alert(container.id)))
    harness.close()
    assert harness.results() == ["dry_run"]
    assert status_of(container) == "running"


def test_mixed_statuses_act_on_firing_only(
    harness: Harness, run_container: RunContainer
) -> None:
    firing, resolved = run_container(), run_container()
    payload = make_notification(
        make_alert(firing.id, fingerprint="1111111111111111"),
        make_alert(resolved.id, status="resolved", fingerprint="2222222222222222"),
        status="firing",
    )
    response = harness.post(payload)
    assert response.status_code == 200
    assert harness.results() == ["killed", "skipped_resolved"]
    assert status_of(firing) == "exited"
    assert status_of(resolved) == "running"


def test_resolved_group_still_acts_on_firing(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    harness.post(make_notification(make_alert(container.id), status="resolved"))
    assert harness.results() == ["killed"]


def test_truncated_count_on_every_record(
    harness: Harness, run_container: RunContainer
) -> None:
    first, second = run_container(), run_container()
    payload = make_notification(
        make_alert(first.id), make_alert(second.id), truncated=3
    )
    response = harness.post(payload)
    assert response.status_code == 200
    assert harness.results() == ["killed", "killed"]
    counts = [r["notification"]["truncatedAlerts"] for r in harness.records()]
    assert counts == [3, 3]
    assert harness.sample("warden_enforcer_truncated_alerts_total") == 3.0


def test_unknown_action_is_skipped_invalid(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    harness.post(make_notification(make_alert(container.id, action="restart")))
    assert harness.results() == ["skipped_invalid"]
    assert status_of(container) == "running"
    labels = {"action": "other", "violation": "cpu_spike", "result": "skipped_invalid"}
    assert harness.sample("warden_enforcer_actions_total", labels) == 1.0


def test_short_id_is_skipped_invalid(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    harness.post(make_notification(make_alert(container.id[:12])))
    assert harness.results() == ["skipped_invalid"]
    assert status_of(container) == "running"


def test_docker_unavailable_gives_503(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    container = run_container()
    harness = Harness(tmp_path, docker_host=f"unix://{tmp_path}/missing.sock")
    response = harness.post(make_notification(make_alert(container.id)))
    harness.close()
    assert response.status_code == 503
    assert harness.results() == []
    assert harness.sample("warden_enforcer_docker_up") == 0.0
    assert status_of(container) == "running"


def test_replaced_audit_log_gives_503(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    harness.audit_path.unlink()
    response = harness.post(make_notification(make_alert(container.id)))
    assert response.status_code == 503
    assert harness.sample("warden_enforcer_audit_errors_total") == 1.0
    assert status_of(container) == "running"


def test_docker_refusal_records_error(
    harness: Harness, run_container: RunContainer
) -> None:
    # Docker rejects an action with an API error only in rare engine states,
    # which no alert can cause on demand, so a replaced kill method raises it.
    from enforcer.docker_api import DockerActionError

    container = run_container()

    def refuse(container_id: str) -> None:
        raise DockerActionError(f"Docker refused kill of {container_id}")

    harness.docker.kill = refuse  # type: ignore[method-assign]
    response = harness.post(make_notification(make_alert(container.id)))
    record = harness.records()[0]
    assert response.status_code == 200
    assert record["result"] == "error"
    assert "refused" in record["reason"]


def test_error_result_allows_retry(
    harness: Harness, run_container: RunContainer
) -> None:
    from enforcer.docker_api import DockerActionError

    container = run_container()
    real_kill = harness.docker.kill

    def refuse(container_id: str) -> None:
        raise DockerActionError("Docker refused kill")

    harness.docker.kill = refuse  # type: ignore[method-assign]
    payload = make_notification(make_alert(container.id))
    harness.post(payload)
    harness.docker.kill = real_kill  # type: ignore[method-assign]
    harness.post(payload)
    assert harness.results() == ["error", "killed"]
    assert status_of(container) == "exited"


def test_protected_wins_over_stale(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container(labels={"warden.protect": "true"})
    alert = make_alert(container.id, starts_at=now_rfc3339())
    time.sleep(0.05)
    container.restart(timeout=0)
    harness.post(make_notification(alert))
    assert harness.results() == ["skipped_protected"]


def test_not_running_wins_over_protected(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container("exit 0", labels={"warden.protect": "true"})
    container.wait()
    harness.post(make_notification(make_alert(container.id)))
    assert harness.results() == ["skipped_not_running"]


def test_duplicate_wins_over_not_found(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    payload = make_notification(make_alert(container.id))
    harness.post(payload)
    container.remove(force=True)
    harness.post(payload)
    assert harness.results() == ["killed", "duplicate"]


def test_refiring_after_resolved_still_acts(
    harness: Harness, run_container: RunContainer
) -> None:
    # Alertmanager marks an alert resolved when its endsAt passes without a
    # refresh, for example while Prometheus restarts. Prometheus restores the
    # alert's active time, so the alert can fire again with the same
    # fingerprint and startsAt, which is the same occurrence key.
    container = run_container()
    firing = make_alert(container.id, fingerprint="3" * 16)
    resolved = dict(firing, status="resolved", endsAt=now_rfc3339())
    harness.post(make_notification(resolved))
    harness.post(make_notification(firing))
    assert harness.results() == ["skipped_resolved", "killed"]


def test_valid_alert_after_invalid_acts(
    harness: Harness, run_container: RunContainer
) -> None:
    # Anyone with the token could send an invalid alert under the key of a
    # real one; its record must not stop the real alert.
    container = run_container()
    valid = make_alert(container.id, fingerprint="4" * 16)
    invalid = dict(valid, labels=dict(valid["labels"], action="reboot"))
    harness.post(make_notification(invalid))
    harness.post(make_notification(valid))
    assert harness.results() == ["skipped_invalid", "killed"]


def test_alert_without_action_skipped(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container()
    alert = make_alert(container.id)
    del alert["labels"]["action"]
    harness.post(make_notification(alert))
    record = harness.records()[0]
    assert record["result"] == "skipped_invalid"
    assert record["reason"] == "alert has no action label"
    assert status_of(container) == "running"
