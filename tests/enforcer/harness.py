"""Build webhook payloads and an enforcer app on the real engine for tests."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry
from werkzeug.test import TestResponse

from enforcer.app import create_app
from enforcer.audit import AuditLog
from enforcer.docker_api import EngineDocker
from enforcer.settings import Settings

TOKEN = "test-token-7f3a9c"


def rfc3339(moment: datetime) -> str:
    """Format a time as Alertmanager does, in UTC with milliseconds."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def now_rfc3339(offset_seconds: float = 0.0) -> str:
    """Return the current time, moved by ``offset_seconds``, in RFC 3339."""
    return rfc3339(datetime.now(UTC) + timedelta(seconds=offset_seconds))


def make_alert(
    container_id: str,
    *,
    action: str = "kill",
    status: str = "firing",
    starts_at: str | None = None,
    fingerprint: str | None = None,
    violation: str = "cpu_spike",
    name: str = "target",
    alertname: str = "ContainerCPUSpike",
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Return one alert of a version 4 webhook payload."""
    labels = {
        "alertname": alertname,
        "action": action,
        "violation": violation,
        "severity": "critical",
        "id": container_id,
        "name": name,
        "instance": "127.0.0.1:9648",
        **(extra_labels or {}),
    }
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{violation} in {name}"},
        "startsAt": starts_at or now_rfc3339(),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else now_rfc3339(1.0),
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": fingerprint or secrets.token_hex(8),
    }


def make_notification(
    *alerts: dict[str, Any], status: str = "firing", truncated: int = 0
) -> dict[str, Any]:
    """Wrap alerts in a version 4 notification as Alertmanager sends it."""
    return {
        "version": "4",
        "status": status,
        "receiver": "warden",
        "groupKey": '{}:{alertname="ContainerCPUSpike"}',
        "truncatedAlerts": truncated,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": list(alerts),
    }


class Harness:
    """An enforcer app on the real engine with its audit log in a test folder."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.audit_path = tmp_path / "audit.jsonl"
        self.settings = replace(
            Settings(token=TOKEN, audit_path=self.audit_path, stop_grace_seconds=1),
            **settings,
        )
        self.docker = EngineDocker(base_url=self.settings.docker_host)
        self.audit = AuditLog(self.audit_path)
        self.registry = CollectorRegistry()
        self.app: Flask = create_app(
            self.settings, self.docker, self.audit, self.registry, own_ids=()
        )
        self.client: FlaskClient = self.app.test_client()

    def post(
        self, payload: Any, token: str | None = TOKEN, **kwargs: Any
    ) -> TestResponse:
        """POST a payload (a JSON-able object, or raw bytes) to /webhook."""
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        data = payload if isinstance(payload, bytes) else json.dumps(payload)
        kwargs.setdefault("content_type", "application/json")
        return self.client.post("/webhook", data=data, headers=headers, **kwargs)

    def records(self) -> list[dict[str, Any]]:
        """Return every audit record, oldest first."""
        # Split on "\n" only: str.splitlines() also splits on characters such
        # as \x1c that a JSON string in a label may hold unescaped.
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_text().split("\n")
        return [json.loads(line) for line in lines if line.strip()]

    def results(self) -> list[str]:
        return [record["result"] for record in self.records()]

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Return a sample of the app's registry, 0.0 when it has none."""
        value = self.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value

    def close(self) -> None:
        self.audit.close()
        self.docker.close()
