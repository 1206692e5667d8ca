"""Tests of the audit log: writing, restart, faults and the events query."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from enforcer import audit, audit_chain
from enforcer.audit import AuditError, AuditLog, EventQueryError, verify_chain

ID_A = "a1" + "0" * 62
ID_B = "a2" + "0" * 62
ID_C = "c3" + "0" * 62


def record(
    key: str,
    result: str = "killed",
    container_id: str = ID_A,
    name: str = "web",
    second: int = 0,
) -> dict[str, Any]:
    return {
        "time": f"2026-01-01T00:00:{second:02d}.000Z",
        "container_id": container_id,
        "container_name": name,
        "result": result,
        "alert": {"key": key, "labels": {"name": name}},
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit.jsonl"


@pytest.fixture
def log(path: Path) -> AuditLog:
    return AuditLog(path)


def append(log: AuditLog, *records: dict[str, Any]) -> None:
    with log.locked():
        for item in records:
            log.append(item)


def test_new_log_created_private(path: Path) -> None:
    AuditLog(path)

    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b""


def test_append_returns_record_as_written(log: AuditLog, path: Path) -> None:
    with log.locked():
        written = log.append(record("k1"))

    assert written["prev_sha256"] == "0" * 64
    assert json.loads(path.read_bytes()) == written
    assert log.last_sha256 == audit_chain.line_sha256(path.read_bytes()[:-1])


def test_append_keeps_caller_record_unchanged(log: AuditLog) -> None:
    original = record("k1")
    with log.locked():
        log.append(original)

    assert "prev_sha256" not in original


def test_append_outside_lock_rejected(log: AuditLog) -> None:
    with pytest.raises(RuntimeError, match=r"inside AuditLog\.locked"):
        log.append(record("k1"))
    with pytest.raises(RuntimeError, match=r"inside AuditLog\.locked"):
        log.is_decided("k1")


def test_append_marks_key_decided(log: AuditLog) -> None:
    with log.locked():
        assert not log.is_decided("k1")
        log.append(record("k1"))
        assert log.is_decided("k1")


@pytest.mark.parametrize("result", ["error", "rate_limited"])
def test_retryable_results_not_decided(log: AuditLog, result: str) -> None:
    with log.locked():
        log.append(record("k1", result=result))
        assert not log.is_decided("k1")


def test_restart_rebuilds_decided_keys(log: AuditLog, path: Path) -> None:
    append(
        log,
        record("killed"),
        record("skipped", result="skipped_protected"),
        record("failed", result="error"),
        record("limited", result="rate_limited"),
    )
    log.close()
    reopened = AuditLog(path)

    with reopened.locked():
        assert reopened.is_decided("killed")
        assert reopened.is_decided("skipped")
        assert not reopened.is_decided("failed")
        assert not reopened.is_decided("limited")
    assert reopened.lines == 4
    assert reopened.last_sha256 == log.last_sha256


def test_restart_continues_chain(log: AuditLog, path: Path) -> None:
    append(log, record("k1"))
    log.close()
    append(AuditLog(path), record("k2"))

    assert verify_chain(path).ok


def test_second_log_sees_other_appends(path: Path) -> None:
    first = AuditLog(path)
    second = AuditLog(path)
    append(first, record("k1"))

    with second.locked():
        assert second.is_decided("k1")
        second.append(record("k2"))
    with first.locked():
        assert first.is_decided("k2")
        first.append(record("k3"))
    assert verify_chain(path).ok


def test_fsync_called_after_write(
    log: AuditLog, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced_sizes: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced_sizes.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(audit.os, "fsync", recording_fsync)
    with log.locked():
        log.append(record("k1"))

    assert synced_sizes == [path.stat().st_size]


def test_failed_write_truncated_back(
    log: AuditLog, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(log, record("k1"))
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        if len(data) > 10:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(audit.os, "write", half_then_full)
    with log.locked(), pytest.raises(AuditError, match="No space left on device"):
        log.append(record("k2"))

    assert path.read_bytes() == before
    with log.locked():
        assert not log.is_decided("k2")


def test_failed_fsync_truncated_back(
    log: AuditLog, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(log, record("k1"))
    before = path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with log.locked():
        monkeypatch.setattr(audit.os, "fsync", failing_fsync)
        with pytest.raises(AuditError, match="Input/output error"):
            log.append(record("k2"))
        monkeypatch.undo()

    assert path.read_bytes() == before
    append(log, record("k3"))
    assert verify_chain(path).ok


def test_unserialisable_record_rejected(log: AuditLog, path: Path) -> None:
    with log.locked(), pytest.raises(ValueError, match="not JSON-serialisable"):
        log.append({"time": datetime.now(UTC)})

    assert path.read_bytes() == b""


def test_directory_path_gives_audit_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError) as info:
        AuditLog(tmp_path)

    assert str(tmp_path) in str(info.value)
    assert "Is a directory" in str(info.value)


def test_path_under_file_gives_audit_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AuditError) as info:
        AuditLog(blocker / "audit.jsonl")

    assert f"{blocker} is not a folder" in str(info.value)


def test_non_regular_file_gives_audit_error(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(AuditError, match="not a regular file"):
        # O_RDWR opens a FIFO without waiting for a peer.
        AuditLog(fifo)


def test_removed_log_gives_audit_error(log: AuditLog, path: Path) -> None:
    path.unlink()

    with pytest.raises(AuditError, match="was removed"):
        log.check_writable()
    with pytest.raises(AuditError, match="was removed"), log.locked():
        pass


def test_replaced_log_gives_audit_error(log: AuditLog, path: Path) -> None:
    path.unlink()
    path.write_text("")

    with pytest.raises(AuditError, match="replaced by another file"):
        log.check_writable()


def test_writable_log_passes_check(log: AuditLog) -> None:
    log.check_writable()


def test_loose_mode_logs_warning(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path.parent.mkdir()
    path.touch(mode=0o666)
    path.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="enforcer.audit"):
        AuditLog(path)

    assert "others can write it" in caplog.text


def test_torn_last_line_left_out(
    log: AuditLog, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    append(log, record("k1"))
    torn = audit_chain.encode_record(record("k2"))[:40]
    with open(path, "ab") as file:
        file.write(torn)

    with caplog.at_level(logging.WARNING, logger="enforcer.audit"):
        reopened = AuditLog(path)

    assert "line 2 (40 bytes at offset" in caplog.text
    assert "left out of the chain" in caplog.text
    assert path.read_bytes().endswith(torn + b"\n")
    assert reopened.last_sha256 == log.last_sha256
    with reopened.locked():
        assert not reopened.is_decided("k2")
        reopened.append(record("k3"))
    assert verify_chain(path).torn_lines == (2,)


def test_torn_line_from_other_process_ended(log: AuditLog, path: Path) -> None:
    append(log, record("k1"))
    with open(path, "ab") as file:
        file.write(b'{"alert": {"key": "k')

    append(log, record("k2"))
    lines = path.read_bytes().split(b"\n")

    assert lines[1] == b'{"alert": {"key": "k'
    assert json.loads(lines[2])["prev_sha256"] == audit_chain.line_sha256(lines[0])


def test_line_missing_only_newline_kept(log: AuditLog, path: Path) -> None:
    append(log, record("k1"), record("k2"))
    path.write_bytes(path.read_bytes()[:-1])

    reopened = AuditLog(path)
    with reopened.locked():
        assert reopened.is_decided("k2")
        reopened.append(record("k3"))
    assert verify_chain(path).ok


def test_broken_chain_still_read(
    log: AuditLog, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    append(log, record("k1"), record("k2"), record("k3"))
    lines = path.read_bytes().split(b"\n")
    del lines[1]
    path.write_bytes(b"\n".join(lines))

    with caplog.at_level(logging.WARNING, logger="enforcer.audit"):
        reopened = AuditLog(path)

    assert "chain broken at line 2" in caplog.text
    with reopened.locked():
        assert reopened.is_decided("k3")


def test_threads_decide_a_key_once(log: AuditLog, path: Path) -> None:
    barrier = threading.Barrier(8)

    def decide() -> None:
        barrier.wait()
        with log.locked():
            result = "duplicate" if log.is_decided("shared") else "killed"
            log.append(record("shared", result=result))

    threads = [threading.Thread(target=decide) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [json.loads(line)["result"] for line in path.read_text().splitlines()]

    assert results.count("killed") == 1
    assert results.count("duplicate") == 7
    assert verify_chain(path).ok


@pytest.fixture
def history(log: AuditLog) -> AuditLog:
    append(
        log,
        record("k1", container_id=ID_A, name="web", second=1),
        record("k2", container_id=ID_B, name="db", second=2),
        record("k3", container_id=ID_C, name="web", second=3),
        record("k4", container_id=ID_A, name="web", second=4),
    )
    return log


def keys(events: list[dict[str, Any]]) -> list[str]:
    return [event["alert"]["key"] for event in events]


def test_events_newest_first(history: AuditLog) -> None:
    assert keys(history.events()) == ["k4", "k3", "k2", "k1"]


def test_events_limit_keeps_newest(history: AuditLog) -> None:
    assert keys(history.events(limit=2)) == ["k4", "k3"]


def test_events_by_full_id(history: AuditLog) -> None:
    assert keys(history.events(container=ID_A)) == ["k4", "k1"]


def test_events_by_name_across_recreation(history: AuditLog) -> None:
    assert keys(history.events(container="web")) == ["k4", "k3", "k1"]


def test_events_by_unique_prefix(history: AuditLog) -> None:
    assert keys(history.events(container="a2")) == ["k2"]
    assert keys(history.events(container="c3")) == ["k3"]


def test_events_ambiguous_prefix_rejected(history: AuditLog) -> None:
    with pytest.raises(EventQueryError, match="prefix of 2 container IDs"):
        history.events(container="a")


def test_events_unknown_container_empty(history: AuditLog) -> None:
    assert history.events(container="nothing") == []


def test_events_since_datetime(history: AuditLog) -> None:
    since = datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)

    assert keys(history.events(since=since)) == ["k4", "k3"]


def test_events_since_string(history: AuditLog) -> None:
    found = history.events(container="web", since="2026-01-01T01:00:02+01:00")

    assert keys(found) == ["k4", "k3"]


@pytest.mark.parametrize("since", ["yesterday", datetime(2026, 1, 1)])
def test_events_invalid_since_rejected(history: AuditLog, since: object) -> None:
    with pytest.raises(EventQueryError, match="since"):
        history.events(since=since)  # type: ignore[arg-type]


def test_events_invalid_limit_rejected(history: AuditLog) -> None:
    with pytest.raises(EventQueryError, match="limit 0 is invalid"):
        history.events(limit=0)


def test_events_skip_torn_lines(history: AuditLog, path: Path) -> None:
    with open(path, "ab") as file:
        file.write(b"not json\n")
    append(history, record("k5", second=5))
    with open(path, "ab") as file:
        file.write(b'{"torn')

    assert keys(history.events(limit=3)) == ["k5", "k4", "k3"]


def test_events_see_other_process_appends(history: AuditLog, path: Path) -> None:
    append(AuditLog(path), record("k9", container_id="f" * 64, name="new"))

    assert keys(history.events(container="ff")) == ["k9"]


def test_events_read_large_log_in_blocks(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_chain, "BLOCK_SIZE", 100)
    append(log, *(record(f"k{number}", second=number % 60) for number in range(300)))

    found = log.events(limit=250)

    assert keys(found) == [f"k{number}" for number in range(299, 49, -1)]


@pytest.mark.parametrize("name", ["caf\u00e9", 'say "hi"', "bad \ud800 name"])
def test_events_by_unusual_name(log: AuditLog, name: str) -> None:
    append(
        log,
        record("k1", container_id=ID_A, name=name),
        record("k2", container_id=ID_B, name="other"),
    )

    assert keys(log.events(container=name)) == ["k1"]
    assert log.events(container=name)[0]["container_name"] == name


class FakeStatvfs:
    """The fields of os.statvfs_result that check_writable reads."""

    def __init__(self, free_blocks: int, flags: int = 0) -> None:
        self.f_bavail = free_blocks
        self.f_frsize = 4096
        self.f_flag = flags


# A full or read-only file system cannot be made on demand in a test, so
# these two use a fake os.fstatvfs.
def test_full_file_system_fails_check(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit.os, "fstatvfs", lambda fd: FakeStatvfs(10))

    with pytest.raises(AuditError, match="only 40960 bytes free"):
        log.check_writable()


def test_read_only_file_system_fails_check(
    log: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeStatvfs(1 << 20, flags=os.ST_RDONLY)
    monkeypatch.setattr(audit.os, "fstatvfs", lambda fd: fake)

    with pytest.raises(AuditError, match="read-only file system"):
        log.check_writable()


def test_many_invalid_lines_warned_few_times(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir()
    path.write_bytes(b"garbage\n" * 50)
    with caplog.at_level(logging.WARNING, logger="enforcer.audit"):
        AuditLog(path)

    warnings = [
        item for item in caplog.records if "not a JSON object" in item.getMessage()
    ]
    assert len(warnings) == audit.MAX_LINE_WARNINGS


def test_open_logs_line_counts(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path.parent.mkdir()
    path.write_bytes(b"garbage\n")
    with caplog.at_level(logging.INFO, logger="enforcer.audit"):
        AuditLog(path)

    assert "1 lines, 0 decided alerts, 1 lines not JSON objects" in caplog.text
