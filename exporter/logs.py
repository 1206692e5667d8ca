"""Log formatting: logfmt for people and grep, JSON for log shippers."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, str]:
    fields = {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    if record.exc_info:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


def logfmt_value(value: str) -> str:
    """Quote a logfmt value that contains spaces, quotes, ``=`` or control text."""
    if value and not any(char in value for char in ' "=\\') and value.isprintable():
        return value
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    """Format a record as ``ts=… level=… logger=… msg="…"``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        return " ".join(f"{key}={logfmt_value(val)}" for key, val in fields.items())


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False)


def configure_logging(level: str, log_format: str) -> None:
    """Send the root logger's records to stderr in the given format."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else LogfmtFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.ERROR))
    # The SDK and its HTTP library log every request at debug, which would
    # bury the exporter's own debug lines.
    for name in ("docker", "urllib3"):
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
