"""Log formatting of the enforcer: the exporter's logfmt and JSON formats.

Both parts share one implementation, so that they write the same fields
and escape the same characters (see ``exporter.logs``).
"""

from __future__ import annotations

from exporter.logs import (
    JsonFormatter,
    LogfmtFormatter,
    configure_logging,
    escape_character,
    logfmt_value,
)

__all__ = [
    "JsonFormatter",
    "LogfmtFormatter",
    "configure_logging",
    "escape_character",
    "logfmt_value",
]
