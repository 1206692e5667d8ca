"""Tests of the webhook payload model, on made-up and real Alertmanager payloads."""

from __future__ import annotations

import contextlib
import copy
import json
import queue
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enforcer.payload import (
    Alert,
    Notification,
    PayloadError,
    is_go_zero_time,
    parse_notification,
    parse_rfc3339,
)
from tests.services import ServerFactory

ID_A = "a" * 64
ID_B = "b" * 64


def make_alert(**overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": "firing",
        "labels": {
            "alertname": "ContainerCPUSpike",
            "action": "kill",
            "violation": "cpu_spike",
            "id": ID_A,
            "name": "a",
        },
        "annotations": {"summary": "CPU above its limit"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": "1111111111111111",
    }
    alert.update(overrides)
    return alert


def make_payload(*alerts: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "version": "4",
        "status": "firing",
        "receiver": "warden",
        "groupKey": '{}:{alertname="ContainerCPUSpike"}',
        "truncatedAlerts": 0,
        "groupLabels": {},
        "commonLabels": {"alertname": "ContainerCPUSpike"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts) if alerts else [make_alert()],
    }
    payload.update(overrides)
    return payload


def raised(document: object) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        parse_notification(document)
    return info.value


def test_valid_payload_parses_every_field() -> None:
    notification = parse_notification(make_payload())

    assert notification.version == "4"
    assert notification.status == "firing"
    assert notification.receiver == "warden"
    assert notification.group_key == '{}:{alertname="ContainerCPUSpike"}'
    assert notification.truncated_alerts == 0
    assert dict(notification.group_labels) == {}
    assert dict(notification.common_labels) == {"alertname": "ContainerCPUSpike"}
    assert dict(notification.common_annotations) == {}
    assert notification.external_url == "http://alertmanager.example:9093"
    assert len(notification.alerts) == 1


def test_alert_fields_and_key() -> None:
    alert = parse_notification(make_payload()).alerts[0]

    assert alert.status == "firing"
    assert alert.labels["id"] == ID_A
    assert alert.annotations["summary"] == "CPU above its limit"
    assert alert.starts_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert alert.starts_at_raw == "2026-01-01T00:00:00Z"
    assert alert.ends_at is None
    assert alert.generator_url == "http://prometheus.example:9090/graph"
    assert alert.fingerprint == "1111111111111111"
    assert alert.key == "1111111111111111@2026-01-01T00:00:00Z"


def test_mixed_statuses_kept_per_alert() -> None:
    resolved = make_alert(
        status="resolved",
        endsAt="2026-01-01T00:01:00Z",
        fingerprint="2222222222222222",
        labels={**make_alert()["labels"], "id": ID_B, "name": "b"},
    )
    notification = parse_notification(make_payload(make_alert(), resolved))

    assert notification.status == "firing"
    assert [alert.status for alert in notification.alerts] == ["firing", "resolved"]
    assert notification.alerts[1].ends_at == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def test_truncated_alerts_count_kept() -> None:
    payload = make_payload(
        make_alert(), make_alert(fingerprint="3333333333333333"), truncatedAlerts=3
    )
    notification = parse_notification(payload)

    assert notification.truncated_alerts == 3
    assert len(notification.alerts) == 2


def test_labels_kept_byte_for_byte() -> None:
    labels = {
        "alertname": "X",
        "quote": 'say "hi"',
        "newline": "one\ntwo",
        "unicode": "caf\u00e9 \u65e5\u672c \U0001f600",
        "space": "  padded  ",
        "empty": "",
    }
    document = json.loads(json.dumps(make_payload(make_alert(labels=labels))))
    parsed = parse_notification(document).alerts[0].labels

    assert dict(parsed) == labels
    for key, value in labels.items():
        assert parsed[key].encode("utf-8") == value.encode("utf-8")


def test_alert_key_keeps_raw_start_time() -> None:
    raw = "2026-01-01T00:00:00.123456789+02:00"
    alert = parse_notification(make_payload(make_alert(startsAt=raw))).alerts[0]

    assert alert.key == f"1111111111111111@{raw}"
    assert alert.starts_at.microsecond == 123456
    assert alert.starts_at.utcoffset() == timedelta(hours=2)


def test_labels_cannot_be_changed() -> None:
    alert = parse_notification(make_payload()).alerts[0]

    with pytest.raises(TypeError):
        alert.labels["action"] = "stop"  # type: ignore[index]


def test_document_must_be_an_object() -> None:
    error = raised([make_payload()])

    assert error.field == ""
    assert "expected a JSON object" in str(error)
    assert "a list of 1 items" in str(error)


@pytest.mark.parametrize("version", ["3", "5", "", 4])
def test_version_other_than_4_rejected(version: object) -> None:
    error = raised(make_payload(version=version))

    assert error.field == "version"


@pytest.mark.parametrize(
    "name",
    [
        "version",
        "status",
        "receiver",
        "groupKey",
        "truncatedAlerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ],
)
def test_missing_top_level_field_named(name: str) -> None:
    payload = make_payload()
    del payload[name]
    error = raised(payload)

    assert error.field == name
    assert "no such field" in str(error)


@pytest.mark.parametrize(
    "name",
    [
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    ],
)
def test_missing_alert_field_named(name: str) -> None:
    broken = make_alert()
    del broken[name]
    error = raised(make_payload(make_alert(), broken))

    assert error.field == f"alerts[1].{name}"


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        ({"status": "pending"}, "status", '"firing" or "resolved"'),
        ({"receiver": 7}, "receiver", "a string"),
        ({"truncatedAlerts": -1}, "truncatedAlerts", "a non-negative integer"),
        ({"truncatedAlerts": True}, "truncatedAlerts", "a non-negative integer"),
        ({"truncatedAlerts": 1.5}, "truncatedAlerts", "a non-negative integer"),
        ({"groupLabels": None}, "groupLabels", "an object of string values"),
        ({"commonLabels": {"a": 1}}, "commonLabels.a", "a string"),
        ({"alerts": {}}, "alerts", "a list of alert objects"),
        ({"alerts": ["x"]}, "alerts[0]", "a JSON object"),
    ],
)
def test_wrong_top_level_value_named(
    overrides: dict[str, Any], field: str, expected: str
) -> None:
    error = raised(make_payload(**overrides))

    assert error.field == field
    assert error.expected == expected


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"status": "FIRING"}, "alerts[0].status"),
        ({"labels": {"id": None}}, "alerts[0].labels.id"),
        ({"labels": []}, "alerts[0].labels"),
        ({"annotations": {"summary": 1}}, "alerts[0].annotations.summary"),
        ({"startsAt": "2026-01-01 00:00:00Z"}, "alerts[0].startsAt"),
        ({"startsAt": "2026-01-01T00:00:00"}, "alerts[0].startsAt"),
        ({"startsAt": "2026-13-01T00:00:00Z"}, "alerts[0].startsAt"),
        ({"startsAt": "0001-01-01T00:00:00Z"}, "alerts[0].startsAt"),
        ({"startsAt": 1767225600}, "alerts[0].startsAt"),
        ({"endsAt": "yesterday"}, "alerts[0].endsAt"),
        ({"endsAt": None}, "alerts[0].endsAt"),
        ({"fingerprint": ""}, "alerts[0].fingerprint"),
        ({"fingerprint": "ABCDEF0123456789"}, "alerts[0].fingerprint"),
        ({"fingerprint": "11111111"}, "alerts[0].fingerprint"),
        ({"generatorURL": None}, "alerts[0].generatorURL"),
    ],
)
def test_wrong_alert_value_named(overrides: dict[str, Any], field: str) -> None:
    error = raised(make_payload(make_alert(**overrides)))

    assert error.field == field


def test_lone_surrogate_label_rejected() -> None:
    document = json.loads('{"x": "bad \\ud800 value"}')
    error = raised(make_payload(make_alert(labels=document)))

    assert error.field == "alerts[0].labels.x"
    assert error.expected == "valid Unicode text"


def test_error_message_shortens_long_values() -> None:
    error = raised(make_payload(receiver=["x" * 10_000]))
    long_text = raised(make_payload(make_alert(startsAt="9" * 10_000)))

    assert len(str(error)) < 200
    assert len(str(long_text)) < 200
    assert "..." in str(long_text)


def test_error_names_field_expected_and_received() -> None:
    error = raised(make_payload(make_alert(status="pending")))

    assert str(error) == (
        'alerts[0].status: expected "firing" or "resolved", got \'pending\''
    )


def test_unknown_fields_ignored() -> None:
    payload = make_payload(make_alert(extra={"x": 1}), newField=[1, 2])

    assert len(parse_notification(payload).alerts) == 1


def test_empty_alert_list_accepted() -> None:
    payload = make_payload()
    payload["alerts"] = []

    assert parse_notification(payload).alerts == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T00:00:00.5Z", datetime(2026, 1, 1, 0, 0, 0, 500000, UTC)),
        (
            "2026-01-01T00:00:00.999999999Z",
            datetime(2026, 1, 1, 0, 0, 0, 999999, UTC),
        ),
        (
            "2026-01-01T05:30:00+05:30",
            datetime(2026, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5.5))),
        ),
        (
            "2026-01-01T00:00:00-01:00",
            datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-1))),
        ),
    ],
)
def test_rfc3339_forms_parsed(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)

    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01",
        "2026-01-01T00:00Z",
        "2026-01-01t00:00:00z",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00.1234567890Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00:00+24:00",
        "0000-01-01T00:00:00Z",
        " 2026-01-01T00:00:00Z",
    ],
)
def test_rfc3339_invalid_forms_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_go_zero_time_recognised() -> None:
    assert is_go_zero_time(parse_rfc3339("0001-01-01T00:00:00Z"))
    assert not is_go_zero_time(parse_rfc3339("0001-01-01T00:00:00.1Z"))
    assert not is_go_zero_time(parse_rfc3339("0001-01-01T00:00:00+01:00"))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=15), children, max_size=5)
    ),
    max_leaves=30,
)


@given(document=json_values)
def test_arbitrary_json_raises_only_payload_error(document: object) -> None:
    # Any other exception fails the test.
    with contextlib.suppress(PayloadError):
        parse_notification(document)


TOP_FIELDS = list(make_payload())
ALERT_FIELDS = list(make_alert())


@given(
    field=st.sampled_from(TOP_FIELDS + [f"alert.{name}" for name in ALERT_FIELDS]),
    value=json_values,
)
@settings(max_examples=300)
def test_one_field_replaced_raises_only_payload_error(
    field: str, value: object
) -> None:
    payload = copy.deepcopy(make_payload())
    if field.startswith("alert."):
        payload["alerts"][0][field.removeprefix("alert.")] = value
    else:
        payload[field] = value
    try:
        parse_notification(payload)
    except PayloadError as error:
        assert error.field


label_maps = st.dictionaries(st.text(), st.text(), max_size=8)


@given(labels=label_maps, annotations=label_maps, ensure_ascii=st.booleans())
def test_valid_payload_round_trips_labels(
    labels: dict[str, str], annotations: dict[str, str], ensure_ascii: bool
) -> None:
    body = json.dumps(
        make_payload(make_alert(labels=labels, annotations=annotations)),
        ensure_ascii=ensure_ascii,
    )
    alert: Alert = parse_notification(json.loads(body)).alerts[0]

    assert dict(alert.labels) == labels
    assert dict(alert.annotations) == annotations
    assert [key.encode() for key in alert.labels] == [key.encode() for key in labels]
    assert [value.encode() for value in alert.labels.values()] == [
        value.encode() for value in labels.values()
    ]


# Payloads sent by a real Alertmanager 0.25.

ODD_VALUES = {
    "quote": 'say "hi" \\ back',
    "newline": "one\ntwo",
    "unicode": "caf\u00e9 \u65e5\u672c \U0001f600",
    "html": "<b>&amp;</b>",
}


class WebhookSink:
    """An HTTP server on 127.0.0.1 that stores every body posted to it."""

    def __init__(self) -> None:
        self.bodies: queue.Queue[bytes] = queue.Queue()
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                bodies.put(self.rfile.read(length))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_notification(self, timeout: float = 30.0) -> Notification:
        body = self.bodies.get(timeout=timeout)
        return parse_notification(json.loads(body))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    server = WebhookSink()
    yield server
    server.close()


def start_alertmanager(
    servers: ServerFactory, url: str, group_by: list[str], max_alerts: int = 0
) -> str:
    config = {
        "route": {
            "receiver": "warden",
            "group_by": group_by,
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "warden",
                "webhook_configs": [
                    {"url": url, "send_resolved": True, "max_alerts": max_alerts}
                ],
            }
        ],
    }
    return servers.alertmanager(config).url


def post_alerts(alertmanager_url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{alertmanager_url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def test_firing_alert_from_alertmanager(
    servers: ServerFactory, sink: WebhookSink
) -> None:
    url = start_alertmanager(servers, sink.url, group_by=["..."])
    started = datetime.now(UTC) - timedelta(seconds=5)
    labels = {"alertname": "ContainerCPUSpike", "action": "kill", **ODD_VALUES}
    post_alerts(url, [{"labels": labels, "startsAt": rfc3339(started)}])

    notification = sink.next_notification()
    alert = notification.alerts[0]

    assert notification.version == "4"
    assert notification.truncated_alerts == 0
    assert alert.status == "firing"
    assert dict(alert.labels) == labels
    assert alert.ends_at is None
    assert abs(alert.starts_at - started) < timedelta(milliseconds=1)
    assert len(alert.fingerprint) == 16


def test_resolved_alert_has_end_time(servers: ServerFactory, sink: WebhookSink) -> None:
    url = start_alertmanager(servers, sink.url, group_by=["..."])
    started = datetime.now(UTC) - timedelta(minutes=2)
    ended = datetime.now(UTC) - timedelta(minutes=1)
    labels = {"alertname": "ContainerCPUSpike", "action": "kill"}
    # Alertmanager sends a resolved alert only after it sent it firing.
    post_alerts(url, [{"labels": labels, "startsAt": rfc3339(started)}])
    assert sink.next_notification().alerts[0].status == "firing"
    post_alerts(
        url,
        [{"labels": labels, "startsAt": rfc3339(started), "endsAt": rfc3339(ended)}],
    )

    notification = sink.next_notification()
    alert = notification.alerts[0]

    assert notification.status == "resolved"
    assert alert.status == "resolved"
    assert alert.ends_at is not None
    assert abs(alert.ends_at - ended) < timedelta(milliseconds=1)


def test_max_alerts_counts_truncated_alerts(
    servers: ServerFactory, sink: WebhookSink
) -> None:
    url = start_alertmanager(servers, sink.url, group_by=["alertname"], max_alerts=2)
    started = rfc3339(datetime.now(UTC) - timedelta(seconds=5))
    post_alerts(
        url,
        [
            {
                "labels": {"alertname": "ContainerCPUSpike", "name": f"c{index}"},
                "startsAt": started,
            }
            for index in range(5)
        ],
    )

    notification = sink.next_notification()

    assert len(notification.alerts) == 2
    assert notification.truncated_alerts == 3
    assert dict(notification.group_labels) == {"alertname": "ContainerCPUSpike"}
