"""Log formatting: logfmt for people and grep, JSON for log shippers.

Container names, labels and, in the enforcer, alert labels reach the log
through messages, and alert labels come from anyone who can reach
Alertmanager. A NUL or an ANSI escape sequence such as ``ESC[31m`` written
raw would cut a log line for some readers or rewrite what a terminal
shows. Both formats therefore escape every character that
``str.isprintable`` rejects: C0 and C1 controls, DEL, format characters
such as the bidirectional overrides, line and paragraph separators and
lone surrogates. Printable non-ASCII text, such as ``é`` or ``日本``, stays
readable. The enforcer uses the same formats.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters that make a logfmt value need quotes even when printable.
_NEEDS_QUOTES = frozenset(' "=\\')
# DEL and every non-ASCII character. In JSON text these occur only in strings.
_ESCAPE_CANDIDATES = re.compile(r"[^\x00-\x7e]")


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


def escape_character(char: str) -> str:
    """Return ``char`` as is when printable, else as a backslash escape."""
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def logfmt_value(value: str) -> str:
    """Quote and escape a logfmt value unless it is a plain printable word."""
    if value and value.isprintable() and not _NEEDS_QUOTES.intersection(value):
        return value
    return '"' + "".join(escape_character(char) for char in value) + '"'


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    # JSON spells characters beyond the BMP as a UTF-16 surrogate pair.
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


class LogfmtFormatter(logging.Formatter):
    """Format a record as ``ts=… level=… logger=… msg="…"`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        return " ".join(f"{key}={logfmt_value(val)}" for key, val in fields.items())


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line, non-printables escaped."""

    def format(self, record: logging.LogRecord) -> str:
        # With ensure_ascii off, json.dumps writes DEL and non-ASCII text raw.
        text = json.dumps(_fields(record), ensure_ascii=False)
        return _ESCAPE_CANDIDATES.sub(_json_escape, text)


def configure_logging(level: str, log_format: str) -> None:
    """Send the root logger's records to stderr in the given format."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else LogfmtFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.ERROR))
    # The SDK and its HTTP library log every request at debug, which would
    # bury the program's own debug lines.
    for name in ("docker", "urllib3"):
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
