"""Log lines escape control and non-printable characters from alerts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from enforcer.logs import JsonFormatter, LogfmtFormatter, logfmt_value
from tests.enforcer.harness import make_alert, make_notification
from tests.enforcer.test_server import post, start_enforcer
from tests.services import ServerFactory

HOSTILE = "Spike\x00\x1b[31mred\x1b[0m\x7f\x9b\u202eevil\u2028\U000e0001"


def record_of(message: str) -> logging.LogRecord:
    return logging.LogRecord(
        "enforcer.test", logging.INFO, __file__, 1, message, (), None
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak\r\ttab", '"line\\nbreak\\r\\ttab"'),
        ("nul\x00", '"nul\\x00"'),
        ("\x1b[31mred", '"\\x1b[31mred"'),
        ("del\x7f", '"del\\x7f"'),
        ("csi\x9b", '"csi\\x9b"'),
        ("rtl\u202eoverride", '"rtl\\u202eoverride"'),
        ("sep\u2028line", '"sep\\u2028line"'),
        ("tag\U000e0001", '"tag\\U000e0001"'),
        ("surrogate\udcff", '"surrogate\\udcff"'),
        ("café", "café"),
        ("日本 語", '"日本 語"'),
    ],
)
def test_logfmt_value_escapes(value: str, expected: str) -> None:
    assert logfmt_value(value) == expected


def test_logfmt_line_has_no_raw_controls() -> None:
    line = LogfmtFormatter().format(record_of(f"alertname={HOSTILE} é"))
    assert line.isprintable()
    assert "\\x00\\x1b[31mred\\x1b[0m\\x7f\\x9b\\u202eevil" in line
    assert "é" in line


def test_json_line_has_no_raw_controls() -> None:
    line = JsonFormatter().format(record_of(f"alertname={HOSTILE} é"))
    assert line.isprintable()
    assert "\\u007f\\u009b\\u202eevil\\u2028\\udb40\\udc01" in line
    assert "é" in line


def test_json_line_decodes_to_message() -> None:
    message = f"alertname={HOSTILE} é 日本"
    line = JsonFormatter().format(record_of(message))
    assert json.loads(line)["msg"] == message


@pytest.mark.docker
@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_server_log_escapes_alert_labels(
    servers: ServerFactory, tmp_path: Path, log_format: str
) -> None:
    server = start_enforcer(servers, tmp_path, f"--log.format={log_format}")
    missing_id = "f" * 64
    alert = make_alert(missing_id, alertname=HOSTILE)
    status, _ = post(server, make_notification(alert))
    server.stop()
    log = server.log_path.read_bytes()
    assert status == 200
    assert b"not_found" in log
    for raw in (b"\x00", b"\x1b", b"\x7f", "\x9b".encode(), "\u202e".encode()):
        assert raw not in log
    assert b"\\u202eevil" in log


def test_lone_surrogate_escaped_as_ascii() -> None:
    # A lone surrogate cannot be encoded as UTF-8, so stderr would fail on it.
    line = LogfmtFormatter().format(record_of("bad\udcff"))
    assert line.isascii()
    assert "bad\\udcff" in line
