"""Tests of the audit log's hash chain and of verify_chain."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enforcer import audit_chain
from enforcer.audit import AuditLog, VerifyResult, verify_chain
from enforcer.audit_chain import (
    GENESIS_SHA256,
    decode_line,
    encode_record,
    iter_lines,
    iter_lines_backwards,
    line_sha256,
)
from tests.services import wait_until


def record(number: int, result: str = "killed") -> dict[str, object]:
    return {
        "time": f"2026-01-01T00:00:{number:02d}.000Z",
        "container_id": f"{number:x}" * 64,
        "container_name": f"c{number}",
        "result": result,
        "alert": {"key": f"{number:016x}@2026-01-01T00:00:00Z"},
    }


def write_log(path: Path, count: int) -> AuditLog:
    log = AuditLog(path)
    with log.locked():
        for number in range(1, count + 1):
            log.append(record(number))
    return log


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def test_intact_log_verifies(path: Path) -> None:
    log = write_log(path, 4)
    result = verify_chain(path)

    assert result.ok
    assert result.lines == 4
    assert result.first_broken_line is None
    assert result.torn_lines == ()
    assert result.head_sha256 == log.last_sha256
    assert result.reason == "4 lines, chain intact"


def test_first_line_links_to_zeros(path: Path) -> None:
    write_log(path, 2)
    first, second = (json.loads(line) for line in lines_of(path))

    assert first["prev_sha256"] == GENESIS_SHA256
    assert GENESIS_SHA256 == "0" * 64
    assert second["prev_sha256"] == line_sha256(lines_of(path)[0])


def test_lines_are_canonical_json(path: Path) -> None:
    write_log(path, 1)
    line = lines_of(path)[0]
    parsed = json.loads(line)

    assert line == encode_record(parsed)
    assert list(parsed) == sorted(parsed)
    assert b", " not in line


def test_empty_log_verifies(path: Path) -> None:
    path.touch()
    result = verify_chain(path)

    assert result.ok
    assert result.lines == 0
    assert result.head_sha256 == GENESIS_SHA256


def test_changed_value_breaks_next_line(path: Path) -> None:
    write_log(path, 4)
    lines = lines_of(path)
    lines[1] = lines[1].replace(b'"killed"', b'"kilLed"')
    write_lines(path, lines)
    result = verify_chain(path)

    assert not result.ok
    assert result.first_broken_line == 3
    assert "line 3: prev_sha256" in result.reason
    assert "line 2 was changed" in result.reason
    assert result.lines == 4


def test_changed_byte_breaking_json_named(path: Path) -> None:
    write_log(path, 4)
    lines = lines_of(path)
    lines[1] = lines[1].replace(b'"result"', b"\"result'", 1)
    write_lines(path, lines)
    result = verify_chain(path)

    assert not result.ok
    assert result.first_broken_line == 2
    assert result.torn_lines == (2,)
    assert "line 2: not a JSON object" in result.reason


def test_changed_link_field_named(path: Path) -> None:
    write_log(path, 4)
    lines = lines_of(path)
    prev = json.loads(lines[2])["prev_sha256"]
    changed = ("1" if prev[0] == "0" else "0") + prev[1:]
    lines[2] = lines[2].replace(prev.encode(), changed.encode())
    write_lines(path, lines)
    result = verify_chain(path)

    assert result.first_broken_line == 3
    assert f"line 3: prev_sha256 is '{changed[:12]}...'" in result.reason


def test_deleted_line_named(path: Path) -> None:
    write_log(path, 5)
    lines = lines_of(path)
    del lines[2]
    write_lines(path, lines)
    result = verify_chain(path)

    assert not result.ok
    assert result.first_broken_line == 3
    assert result.lines == 4


def test_deleted_first_line_named(path: Path) -> None:
    write_log(path, 3)
    write_lines(path, lines_of(path)[1:])
    result = verify_chain(path)

    assert result.first_broken_line == 1
    assert "64 zeros" in result.reason


def test_reordered_lines_named(path: Path) -> None:
    write_log(path, 5)
    lines = lines_of(path)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(path, lines)
    result = verify_chain(path)

    assert not result.ok
    assert result.first_broken_line == 2


def test_repeated_line_named(path: Path) -> None:
    write_log(path, 3)
    lines = lines_of(path)
    lines.insert(2, lines[1])
    write_lines(path, lines)
    result = verify_chain(path)

    assert result.first_broken_line == 3


def test_torn_last_line_named(path: Path) -> None:
    write_log(path, 3)
    full = encode_record({**record(4), "prev_sha256": "0" * 64})
    with open(path, "ab") as file:
        file.write(full[: len(full) // 2])
    result = verify_chain(path)

    assert not result.ok
    assert result.lines == 4
    assert result.first_broken_line == 4
    assert result.torn_lines == (4,)
    assert "cut short" in result.reason


def test_line_without_newline_named(path: Path) -> None:
    write_log(path, 2)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    result = verify_chain(path)

    assert result.first_broken_line == 2
    assert result.torn_lines == (2,)


def test_torn_line_skipped_by_later_links(path: Path) -> None:
    write_log(path, 2)
    with open(path, "ab") as file:
        file.write(b'{"time": "2026-01-01T0')
    log = AuditLog(path)
    with log.locked():
        log.append(record(3))
    result = verify_chain(path)

    assert not result.ok
    assert result.lines == 4
    assert result.first_broken_line == 3
    assert result.torn_lines == (3,)
    assert "prev_sha256" not in result.reason
    assert result.head_sha256 == log.last_sha256


def test_break_after_torn_line_reported(path: Path) -> None:
    write_log(path, 2)
    with open(path, "ab") as file:
        file.write(b"garbage\n")
    log = AuditLog(path)
    with log.locked():
        log.append(record(3))
        log.append(record(4))
    lines = lines_of(path)
    del lines[3]
    write_lines(path, lines)
    result = verify_chain(path)

    assert result.first_broken_line == 3
    assert result.torn_lines == (3,)
    assert "line 4: prev_sha256" in result.reason


def test_missing_log_fails_verification(tmp_path: Path) -> None:
    result = verify_chain(tmp_path / "absent.jsonl")

    assert not result.ok
    assert "No such file or directory" in result.reason


def test_encode_rejects_non_json_values() -> None:
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        encode_record({"when": object()})
    with pytest.raises(ValueError):
        encode_record({"ratio": float("nan")})


def test_encode_keeps_lone_surrogate_exact() -> None:
    value = "bad \ud800 value"
    line = encode_record({"label": value})

    assert json.loads(line)["label"] == value


def test_encode_keeps_unicode_readable() -> None:
    line = encode_record({"name": "caf\u00e9", "quote": 'a"b\nc'})

    assert "caf\u00e9".encode() in line
    assert json.loads(line) == {"name": "caf\u00e9", "quote": 'a"b\nc'}


@pytest.mark.parametrize("block_size", [1, 3, 7, 64, 1 << 16])
def test_line_readers_agree_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int
) -> None:
    monkeypatch.setattr(audit_chain, "BLOCK_SIZE", block_size)
    lines = [b"first", b"", b"third line", b"x" * 20, b"last"]
    path = tmp_path / "lines"
    path.write_bytes(b"\n".join(lines) + b"\n" + b"torn")

    with open(path, "rb") as file:
        forwards = list(iter_lines(file))
        backwards = list(iter_lines_backwards(file, path.stat().st_size))

    assert [line for _, line, _ in forwards] == [*lines, b"torn"]
    assert [ended for _, _, ended in forwards] == [True] * 5 + [False]
    assert backwards == list(reversed(lines))


def test_backwards_reader_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "lines"
    path.write_bytes(b"only a torn line")

    with open(path, "rb") as file:
        assert list(iter_lines_backwards(file, path.stat().st_size)) == []


# Any code point, with lone surrogates (which json.loads can produce) and
# characters that JSON escapes drawn more often than by chance.
any_text = st.text(
    st.characters(codec=None, categories=None)
    | st.sampled_from(["\ud800", "\udfff", "\u00e9", '"', "\n", "\\"]),
    max_size=20,
)
record_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)


@given(records=st.lists(st.dictionaries(any_text, record_values), max_size=5))
@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_records_read_back_exactly(
    tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    log = AuditLog(path)
    with log.locked():
        written = [log.append(item) for item in records]

    assert [decode_line(line) for line in lines_of(path)] == written
    assert verify_chain(path).ok


def test_zero_filled_tail_reported_torn(path: Path) -> None:
    # Some file systems show a file extended with zero bytes after a
    # power loss during a write.
    write_log(path, 2)
    with open(path, "ab") as file:
        file.write(b"\0" * 4096)
    log = AuditLog(path)
    with log.locked():
        log.append(record(3))
    result = verify_chain(path)

    assert result.torn_lines == (3,)
    assert result.first_broken_line == 3
    assert "prev_sha256" not in result.reason


def is_waiting_for_flock(path: Path) -> bool:
    # /proc/locks marks a blocked request with "->" and names the file
    # as MAJOR:MINOR:INODE.
    inode = f":{path.stat().st_ino} "
    with open("/proc/locks") as locks:
        return any("-> FLOCK" in entry and inode in entry for entry in locks)


def test_verify_waits_for_write_in_progress(path: Path) -> None:
    log = write_log(path, 2)
    results: list[VerifyResult] = []
    line = encode_record({**record(3), "prev_sha256": log.last_sha256}) + b"\n"
    checker = threading.Thread(target=lambda: results.append(verify_chain(path)))

    with log.locked(), open(path, "ab", buffering=0) as writer:
        # A writer in the middle of its append: half a line on disk.
        writer.write(line[:20])
        checker.start()
        wait_until(
            lambda: is_waiting_for_flock(path),
            timeout=30,
            message="verify_chain to wait for the writer's lock",
        )
        writer.write(line[20:])
    checker.join()

    assert results[0].ok
    assert results[0].lines == 3
