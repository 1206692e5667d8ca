"""Bad requests get a clear status and never act on the named container."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunContainer
from tests.enforcer.harness import TOKEN, Harness, make_alert, make_notification

pytestmark = pytest.mark.docker

ACTED = {"killed", "stopped", "paused"}


@dataclass
class BadRequest:
    """One request built around a valid alert for a running container."""

    body: Callable[[str], Any]
    status: int
    method: str = "POST"
    path: str = "/webhook"
    token: str | None = TOKEN
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"
    field: str | None = None  # the field a 400 must name


def valid(container_id: str) -> dict[str, Any]:
    return make_notification(make_alert(container_id))


def with_alert(**changes: Any) -> Callable[[str], Any]:
    def build(container_id: str) -> dict[str, Any]:
        alert = make_alert(container_id)
        alert.update(changes)
        return make_notification(alert)

    return build


def with_labels(**labels: Any) -> Callable[[str], Any]:
    def build(container_id: str) -> dict[str, Any]:
        alert = make_alert(container_id)
        alert["labels"].update(labels)
        return make_notification(alert)

    return build


def with_top(**changes: Any) -> Callable[[str], Any]:
    def build(container_id: str) -> dict[str, Any]:
        payload = valid(container_id)
        payload.update(changes)
        return payload

    return build


def without(name: str) -> Callable[[str], Any]:
    def build(container_id: str) -> dict[str, Any]:
        payload = valid(container_id)
        del payload[name]
        return payload

    return build


def raw(data: bytes) -> Callable[[str], Any]:
    return lambda container_id: data


CASES = {
    "no token": BadRequest(valid, 401, token=None),
    "wrong token": BadRequest(valid, 401, token="not-the-token"),
    "token with suffix": BadRequest(valid, 401, token=TOKEN + "x"),
    "basic scheme": BadRequest(
        valid,
        401,
        token=None,
        headers={"Authorization": f"Basic {TOKEN}"},
    ),
    "malformed JSON": BadRequest(raw(b'{"version": "4",'), 400),
    "not UTF-8": BadRequest(raw(b'{"version": "\xff"}'), 400),
    "nested too deeply": BadRequest(raw(b"[" * 100_000 + b"]" * 100_000), 400),
    "top level list": BadRequest(lambda cid: [valid(cid)], 400, field=""),
    "missing alerts": BadRequest(without("alerts"), 400, field="alerts"),
    "missing version": BadRequest(without("version"), 400, field="version"),
    "old version": BadRequest(with_top(version="3"), 400, field="version"),
    "truncated as text": BadRequest(
        with_top(truncatedAlerts="3"), 400, field="truncatedAlerts"
    ),
    "truncated negative": BadRequest(
        with_top(truncatedAlerts=-1), 400, field="truncatedAlerts"
    ),
    "alerts as object": BadRequest(with_top(alerts={}), 400, field="alerts"),
    "label as number": BadRequest(with_labels(id=7), 400, field="alerts[0].labels.id"),
    "label lone surrogate": BadRequest(
        with_labels(name="\ud800"), 400, field="alerts[0].labels.name"
    ),
    "unknown status": BadRequest(
        with_alert(status="pending"), 400, field="alerts[0].status"
    ),
    "bad startsAt": BadRequest(
        with_alert(startsAt="yesterday"), 400, field="alerts[0].startsAt"
    ),
    "bad fingerprint": BadRequest(
        with_alert(fingerprint="x"), 400, field="alerts[0].fingerprint"
    ),
    "body over limit": BadRequest(
        lambda cid: {**valid(cid), "pad": "x" * (2 * 1024 * 1024)}, 413
    ),
    "wrong content type": BadRequest(valid, 415, content_type="text/plain"),
    "form content type": BadRequest(
        valid, 415, content_type="application/x-www-form-urlencoded"
    ),
    "no content type": BadRequest(valid, 415, content_type=None),
    "GET webhook": BadRequest(valid, 405, method="GET"),
    "PUT webhook": BadRequest(valid, 405, method="PUT"),
    "events without token": BadRequest(
        valid, 401, method="GET", path="/events", token=None
    ),
}

# Alerts that parse but name no container in a form the enforcer accepts.
SKIPPED = {
    "short ID": lambda cid: cid[:12],
    "upper-case ID": lambda cid: cid.upper(),
    "ID with newline": lambda cid: cid + "\n",
    "ID with shell text": lambda cid: cid + "; docker rm -f $(docker ps -q)",
    "ID with path": lambda cid: f"../{cid}",
    "ID with filter text": lambda cid: f"{cid} label=warden.test",
    "ID with space": lambda cid: f" {cid}",
    "name as ID": lambda cid: "target",
}


@pytest.fixture
def harness(tmp_path: Path, docker_client: object) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def send(harness: Harness, case: BadRequest, container_id: str) -> Any:
    headers = dict(case.headers)
    if case.token is not None:
        headers["Authorization"] = f"Bearer {case.token}"
    body = case.body(container_id)
    data = body if isinstance(body, bytes) else json.dumps(body)
    return harness.client.open(
        case.path,
        method=case.method,
        data=data,
        headers=headers,
        content_type=case.content_type,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_request_status_and_no_action(
    harness: Harness, run_container: RunContainer, case: BadRequest
) -> None:
    container = run_container()
    response = send(harness, case, container.id)
    container.reload()
    assert response.status_code == case.status
    assert container.status == "running"
    assert harness.records() == []
    if case.field is not None:
        assert response.json["field"] == case.field
    assert TOKEN not in response.get_data(as_text=True)


@pytest.mark.parametrize("make_id", SKIPPED.values(), ids=SKIPPED.keys())
def test_invalid_id_recorded_not_acted(
    harness: Harness, run_container: RunContainer, make_id: Callable[[str], str]
) -> None:
    container = run_container()
    payload = make_notification(make_alert(make_id(container.id)))
    response = harness.post(payload)
    container.reload()
    assert response.status_code == 200
    assert container.status == "running"
    assert harness.results() == ["skipped_invalid"]


@pytest.mark.parametrize("action", ["restart", "KILL", "kill ", "rm", ""])
def test_invalid_action_recorded_not_acted(
    harness: Harness, run_container: RunContainer, action: str
) -> None:
    container = run_container()
    response = harness.post(make_notification(make_alert(container.id, action=action)))
    container.reload()
    assert response.status_code == 200
    assert container.status == "running"
    assert harness.results() == ["skipped_invalid"]


def test_unauthorized_body_has_no_detail(harness: Harness) -> None:
    response = harness.post(make_notification(), token="wrong")
    assert response.json == {"error": "unauthorized"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
