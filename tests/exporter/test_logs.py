"""The exporter's log formats keep one record on one readable line."""

from __future__ import annotations

import json
import logging

from exporter.logs import JsonFormatter, LogfmtFormatter


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord(
        "exporter.test", logging.WARNING, __file__, 1, message, (), None
    )


def test_logfmt_escapes_control_characters() -> None:
    line = LogfmtFormatter().format(_record("label a\x00b\x1b[31mred\nnext"))
    assert "\x00" not in line
    assert "\x1b" not in line
    assert "\n" not in line
    assert 'msg="label a\\x00b\\x1b[31mred\\nnext"' in line


def test_json_escapes_and_round_trips() -> None:
    message = "café \x1b[0m \u202e"
    line = JsonFormatter().format(_record(message))
    assert "\x1b" not in line
    assert "\u202e" not in line
    assert "café" in line
    assert json.loads(line)["msg"] == message
