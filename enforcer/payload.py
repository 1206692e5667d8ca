"""Parse the Alertmanager webhook payload, version 4, into typed objects.

Alertmanager 0.25 (``notify/webhook/webhook.go``) posts a ``Message``:
``template.Data`` (receiver, status, alerts, group and common labels,
external URL) plus ``version`` "4", ``groupKey`` and ``truncatedAlerts``,
with no field omitted when empty. Times are Go ``time.Time`` values in
RFC 3339 form. ``types.Alerts`` zeroes ``EndsAt`` of every alert that
has not resolved, so a firing alert carries Go's zero time
``0001-01-01T00:00:00Z`` as ``endsAt``.

This module checks structure and types only. Deciding what to do with an
alert belongs to the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

SUPPORTED_VERSION = "4"
STATUSES = ("firing", "resolved")

# Alertmanager sends model.Fingerprint of prometheus/common, which prints
# as 16 lower-case hex digits (%016x).
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")

# RFC 3339 as Go's time.Time marshals it (RFC3339Nano): an upper-case T,
# seconds, an optional fraction of up to nine digits, and Z or an offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|[+-]\d{2}:\d{2})"
)

# Maximum length of an excerpt of a received value in an error message.
_EXCERPT_CHARS = 60

# Stands for "no value" in an error about a missing field, where None
# would read as a JSON null.
MISSING = object()


class PayloadError(ValueError):
    """A webhook payload that is not a valid version 4 notification.

    ``field`` is the dotted path of the offending value, such as
    ``alerts[1].labels``; it is empty when the whole document is wrong.
    """

    def __init__(self, field: str, expected: str, received: object) -> None:
        self.field = field
        self.expected = expected
        self.received = excerpt(received)
        where = field or "payload"
        super().__init__(f"{where}: expected {expected}, got {self.received}")


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, with labels kept exactly as sent."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    starts_at_raw: str
    ends_at: datetime | None
    generator_url: str
    fingerprint: str

    @property
    def key(self) -> str:
        """Identify one occurrence of this alert: fingerprint@startsAt."""
        return f"{self.fingerprint}@{self.starts_at_raw}"


@dataclass(frozen=True)
class Notification:
    """One webhook notification: a group of alerts sent together."""

    version: str
    status: str
    receiver: str
    group_key: str
    truncated_alerts: int
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    alerts: tuple[Alert, ...]


def parse_notification(document: object) -> Notification:
    """Build a Notification from a decoded JSON document.

    Raises:
        PayloadError: a field is missing, has the wrong type or an unknown
            value. The error names the field, the expected value and an
            excerpt of the received one.
    """
    body = _require_object(document, "")
    version = _require_string(body, "version", "")
    if version != SUPPORTED_VERSION:
        raise PayloadError(
            "version",
            f'"{SUPPORTED_VERSION}" (the webhook format of Alertmanager 0.x)',
            version,
        )

    alerts_value = _require(body, "alerts", "", "a list of alert objects")
    if not isinstance(alerts_value, list):
        raise PayloadError("alerts", "a list of alert objects", alerts_value)
    alerts = tuple(
        _parse_alert(item, f"alerts[{index}]")
        for index, item in enumerate(alerts_value)
    )

    return Notification(
        version=version,
        status=_require_status(body, ""),
        receiver=_require_string(body, "receiver", ""),
        group_key=_require_string(body, "groupKey", ""),
        truncated_alerts=_require_count(body, "truncatedAlerts", ""),
        group_labels=_require_string_map(body, "groupLabels", ""),
        common_labels=_require_string_map(body, "commonLabels", ""),
        common_annotations=_require_string_map(body, "commonAnnotations", ""),
        external_url=_require_string(body, "externalURL", ""),
        alerts=alerts,
    )


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into a timezone-aware datetime.

    Digits past microseconds are dropped, not rounded, so a value never
    moves into the next second.

    Raises:
        ValueError: ``text`` is not RFC 3339 with a time zone.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {excerpt(text)}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    microsecond = int((fraction or "").ljust(6, "0")[:6])
    if offset == "Z":
        zone = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"time zone offset out of range: {excerpt(text)}")
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        microsecond,
        tzinfo=zone,
    )


def is_go_zero_time(value: datetime) -> bool:
    """Tell whether ``value`` is Go's zero time, 0001-01-01T00:00:00Z."""
    return value.utcoffset() == timedelta(0) and value.replace(tzinfo=None) == (
        datetime(1, 1, 1)
    )


def excerpt(value: object) -> str:
    """Describe a received value briefly for an error message."""
    if value is MISSING:
        return "no such field"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, str):
        text = repr(value)
    else:
        text = f"{type(value).__name__} {value!r}"
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 3] + "..."
    return text


def _parse_alert(value: object, path: str) -> Alert:
    body = _require_object(value, path)

    fingerprint = _require_string(body, "fingerprint", path)
    if _FINGERPRINT.fullmatch(fingerprint) is None:
        raise PayloadError(
            _join(path, "fingerprint"), "16 lower-case hex digits", fingerprint
        )

    starts_at_raw = _require_string(body, "startsAt", path)
    starts_at = _parse_time(starts_at_raw, _join(path, "startsAt"))
    if is_go_zero_time(starts_at):
        raise PayloadError(
            _join(path, "startsAt"),
            "the time the alert started (Alertmanager always sets it)",
            starts_at_raw,
        )

    ends_at_raw = _require_string(body, "endsAt", path)
    ends_at: datetime | None = _parse_time(ends_at_raw, _join(path, "endsAt"))
    if ends_at is not None and is_go_zero_time(ends_at):
        ends_at = None

    return Alert(
        status=_require_status(body, path),
        labels=_require_string_map(body, "labels", path),
        annotations=_require_string_map(body, "annotations", path),
        starts_at=starts_at,
        starts_at_raw=starts_at_raw,
        ends_at=ends_at,
        generator_url=_require_string(body, "generatorURL", path),
        fingerprint=fingerprint,
    )


def _parse_time(text: str, path: str) -> datetime:
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise PayloadError(
            path, "an RFC 3339 time such as 2026-01-01T00:00:00Z", text
        ) from None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _require_object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(path, "a JSON object", value)
    return value


def _require(body: dict[str, Any], name: str, path: str, expected: str) -> object:
    if name not in body:
        raise PayloadError(_join(path, name), expected, MISSING)
    return body[name]


def _require_string(body: dict[str, Any], name: str, path: str) -> str:
    value = _require(body, name, path, "a string")
    field = _join(path, name)
    if not isinstance(value, str):
        raise PayloadError(field, "a string", value)
    _require_unicode(value, field)
    return value


def _require_status(body: dict[str, Any], path: str) -> str:
    status = _require_string(body, "status", path)
    if status not in STATUSES:
        raise PayloadError(_join(path, "status"), '"firing" or "resolved"', status)
    return status


def _require_count(body: dict[str, Any], name: str, path: str) -> int:
    value = _require(body, name, path, "a non-negative integer")
    # bool is a subclass of int in Python, but true is not a count.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError(_join(path, name), "a non-negative integer", value)
    return value


def _require_string_map(
    body: dict[str, Any], name: str, path: str
) -> Mapping[str, str]:
    value = _require(body, name, path, "an object of string values")
    field = _join(path, name)
    if not isinstance(value, dict):
        raise PayloadError(field, "an object of string values", value)
    for key, item in value.items():
        # json.loads only makes string keys, but callers may pass any dict.
        if not isinstance(key, str):
            raise PayloadError(field, "string keys", key)
        _require_unicode(key, field)
        if not isinstance(item, str):
            raise PayloadError(f"{field}.{key}", "a string", item)
        _require_unicode(item, f"{field}.{key}")
    return MappingProxyType(dict(value))


def _require_unicode(text: str, field: str) -> None:
    # JSON escapes can spell a lone surrogate (\ud800), which json.loads
    # accepts but no UTF-8 file, label or log line can hold.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(field, "valid Unicode text", text) from None
