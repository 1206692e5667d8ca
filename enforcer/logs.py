"""Log formatting of the enforcer, with every non-printable character escaped.

Alert labels and annotations come from anyone who can reach Alertmanager,
and they reach the log through messages. A NUL or an ANSI escape sequence
such as ``ESC[31m`` written raw would cut a log line for some readers or
rewrite what a terminal shows. Both formats therefore escape every
character that ``str.isprintable`` rejects: C0 and C1 controls, DEL,
format characters such as the bidirectional overrides, line and paragraph
separators and lone surrogates. Printable non-ASCII text, such as ``é`` or
``日本``, stays readable.

The fields and their order are those of the exporter's formats.
"""

from __future__ import annotations

import logging
import re

from exporter.logs import JsonFormatter as ExporterJsonFormatter
from exporter.logs import _fields
from exporter.logs import configure_logging as configure_exporter_logging

_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters that make a logfmt value need quotes even when printable.
_NEEDS_QUOTES = frozenset(' "=\\')
# DEL and every non-ASCII character. In JSON text these occur only in strings.
_ESCAPE_CANDIDATES = re.compile(r"[^\x00-\x7e]")


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


class LogfmtFormatter(logging.Formatter):
    """Format a record as ``ts=… level=… logger=… msg="…"`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        return " ".join(f"{key}={logfmt_value(val)}" for key, val in fields.items())


class JsonFormatter(ExporterJsonFormatter):
    """Format a record as one JSON object per line, non-printables escaped."""

    def format(self, record: logging.LogRecord) -> str:
        # With ensure_ascii off, json.dumps writes DEL and non-ASCII text raw.
        return _ESCAPE_CANDIDATES.sub(_json_escape, super().format(record))


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


def configure_logging(level: str, log_format: str) -> None:
    """Send the root logger's records to stderr in the given format."""
    configure_exporter_logging(level, log_format)
    formatter = JsonFormatter() if log_format == "json" else LogfmtFormatter()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
