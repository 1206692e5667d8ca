"""Query the audit log newest first, without loading it into memory."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from enforcer.audit_chain import decode_line, iter_lines_backwards
from enforcer.payload import parse_rfc3339


class EventQueryError(ValueError):
    """An invalid events query, such as an ambiguous container ID prefix."""


def parse_since(since: datetime | str | None) -> datetime | None:
    """Check a ``since`` bound, parsing a string as RFC 3339.

    Raises:
        EventQueryError: ``since`` is not a time, or has no time zone.
    """
    if since is None:
        return None
    if isinstance(since, str):
        try:
            since = parse_rfc3339(since)
        except ValueError:
            raise EventQueryError(
                f"since {since!r} is invalid: expected an RFC 3339 time such as"
                " 2026-01-01T00:00:00Z"
            ) from None
    if since.tzinfo is None or since.utcoffset() is None:
        raise EventQueryError(
            f"since {since.isoformat()} has no time zone: give one, such as Z"
        )
    return since


def scan_events(
    path: Path,
    end: int,
    selector: tuple[str, str] | None,
    start: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Return up to ``limit`` records before offset ``end``, newest first.

    ``selector`` is a (field, value) pair that a record must contain, and
    ``start`` the earliest record ``time`` kept. The scan does not stop at
    the first older record, because the records of several processes need
    not be in time order.

    Raises:
        OSError: the file cannot be read.
    """
    needles = _needles(*selector) if selector else ()
    found: list[dict[str, Any]] = []
    with open(path, "rb") as file:
        for line in iter_lines_backwards(file, end):
            # Decoding JSON is the cost, so skip lines that cannot match.
            if needles and not any(needle in line for needle in needles):
                continue
            record = decode_line(line)
            if record is None:
                continue
            if selector and record.get(selector[0]) != selector[1]:
                continue
            if start is not None and not _is_at_or_after(record, start):
                continue
            found.append(record)
            if len(found) >= limit:
                break
    return found


def _needles(field: str, value: str) -> tuple[bytes, ...]:
    # The bytes of '"field":"value"' in a line, in both encodings that
    # encode_record writes.
    pair = {field: value}
    escaped = json.dumps(pair, separators=(",", ":"))[1:-1]
    readable = json.dumps(pair, ensure_ascii=False, separators=(",", ":"))[1:-1]
    try:
        return (readable.encode("utf-8"), escaped.encode("ascii"))
    except UnicodeEncodeError:
        return (escaped.encode("ascii"),)


def _is_at_or_after(record: dict[str, Any], start: datetime) -> bool:
    moment = record.get("time")
    if not isinstance(moment, str):
        return False
    try:
        return parse_rfc3339(moment) >= start
    except ValueError:
        return False
