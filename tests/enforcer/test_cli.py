"""The warden-enforcer console script: exit codes, messages, verify-audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enforcer.audit import AuditLog
from tests.services import ServerFactory, free_port

ENFORCER = str(Path(sys.executable).parent / "warden-enforcer")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ENFORCER, *args], capture_output=True, text=True, timeout=60)


def test_help_lists_flags_and_exits_zero() -> None:
    result = run("--help")
    assert result.returncode == 0
    for flag in (
        "--web.listen-address",
        "--webhook.token-file",
        "--protect",
        "--guard.name-regex",
        "--stop.grace-period",
        "--web.max-body-bytes",
        "--log.format",
    ):
        assert flag in result.stdout
    assert "(default: 127.0.0.1:9649)" in result.stdout


def test_unknown_flag_exits_two() -> None:
    result = run("--no-such-flag")
    assert result.returncode == 2
    assert "--no-such-flag" in result.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--actions.max-per-minute=0"], "--actions.max-per-minute"),
        (["--stop.grace-period=soon"], "--stop.grace-period"),
        (["--web.listen-address=0.0.0.0:9649"], "--web.listen-address"),
        (["--log.level=loud"], "--log.level"),
    ],
)
def test_invalid_setting_exits_two(args: list[str], flag: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert f"invalid {flag}" in result.stderr


def test_invalid_environment_exits_two() -> None:
    result = subprocess.run(
        [ENFORCER],
        capture_output=True,
        text=True,
        timeout=60,
        env={"WARDEN_ENFORCER_WEB_MAX_BODY_BYTES": "huge", "PATH": "/usr/bin"},
    )
    assert result.returncode == 2
    assert "--web.max-body-bytes" in result.stderr


def test_bad_token_file_hides_content(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("line-one-secret\nline-two-secret\n")
    result = run(f"--webhook.token-file={token}")
    assert result.returncode == 2
    assert str(token) in result.stderr
    assert "secret" not in result.stderr


def test_unwritable_audit_path_exits_two(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run(f"--audit.path={blocker}/audit.jsonl")
    assert result.returncode == 2
    assert "--audit.path" in result.stderr


def write_log(path: Path, count: int) -> None:
    log = AuditLog(path)
    for index in range(count):
        with log.locked():
            log.append({"alert": {"key": f"{index:016x}@t"}, "result": "killed"})
    log.close()


def test_verify_audit_intact_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    result = run("verify-audit", str(path))
    assert result.returncode == 0
    assert "3 records, hash chain intact" in result.stdout


def test_verify_audit_tampered_exits_one(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("killed", "skipped_protected")
    path.write_text("\n".join(lines) + "\n")
    result = run("verify-audit", str(path))
    assert result.returncode == 1
    assert "broken at line 3" in result.stdout


def test_verify_audit_missing_exits_two(tmp_path: Path) -> None:
    result = run("verify-audit", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_verify_audit_directory_exits_two(tmp_path: Path) -> None:
    result = run("verify-audit", str(tmp_path))
    assert result.returncode == 2
    assert f"{str(tmp_path)!r} is a directory" in result.stderr
    assert "expected the JSON lines file that --audit.path names" in result.stderr
    assert "not found" not in result.stderr


def test_verify_audit_fifo_exits_two(tmp_path: Path) -> None:
    fifo = tmp_path / "audit.jsonl"
    os.mkfifo(fifo)
    result = run("verify-audit", str(fifo))
    assert result.returncode == 2
    assert "is not a regular file" in result.stderr


def test_verify_audit_without_path_exits_two() -> None:
    result = run("verify-audit")
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_json_log_format_is_json(servers: ServerFactory, tmp_path: Path) -> None:
    port = free_port()
    server = servers.start(
        "enforcer",
        [
            ENFORCER,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--audit.path={tmp_path / 'audit.jsonl'}",
            "--log.format=json",
        ],
        port,
        ready_path="/healthz",
    )
    server.stop()
    own = [
        json.loads(line) for line in server.log().splitlines() if line.startswith("{")
    ]
    messages = [entry["msg"] for entry in own]
    assert any(message.startswith("starting enforcer") for message in messages)
    assert all(entry["level"] in ("info", "warning") for entry in own)


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "enforcer", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "warden-enforcer" in result.stdout


def test_readable_token_warned_once(servers: ServerFactory, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("very-secret-token\n")
    token.chmod(0o644)
    port = free_port()
    server = servers.start(
        "enforcer",
        [
            ENFORCER,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--webhook.token-file={token}",
            f"--audit.path={tmp_path / 'audit.jsonl'}",
        ],
        port,
        ready_path="/healthz",
    )
    server.stop()
    warnings = [line for line in server.log().splitlines() if "mode 0644" in line]
    assert len(warnings) == 1
    assert "level=warning" in warnings[0]
    assert str(token) in warnings[0]
    assert "very-secret-token" not in server.log()


def test_token_writable_by_others_exits_two(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("very-secret-token\n")
    token.chmod(0o666)
    result = run(f"--webhook.token-file={token}")
    assert result.returncode == 2
    assert "invalid --webhook.token-file" in result.stderr
    assert "mode 0666" in result.stderr
