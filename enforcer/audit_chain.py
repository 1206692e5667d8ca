"""Encode, hash and verify the lines of the hash-chained audit log.

Every line is one JSON object with sorted keys and no spaces. Its
``prev_sha256`` field is the SHA-256, in hex, of the bytes of the
previous record line without its newline. The first line carries
``GENESIS_SHA256`` (64 zeros). Changing, removing, inserting or
reordering a line therefore breaks the link of the line after it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

GENESIS_SHA256 = "0" * 64
PREV_FIELD = "prev_sha256"

# Read size for scanning the log forwards and backwards.
BLOCK_SIZE = 1 << 16


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking an audit log's chain from its first line.

    ``lines`` counts every line of the file, torn ones included.
    ``first_broken_line`` is 1-based and None when ``ok``. ``torn_lines``
    lists lines that are not JSON objects, such as a write cut short by a
    crash. The chain skips them and goes on from the last record.
    ``head_sha256`` is the hash of the last record: keep a copy elsewhere
    to detect a later change to the end of the log, which the chain alone
    cannot show.
    """

    ok: bool
    lines: int
    first_broken_line: int | None
    reason: str
    torn_lines: tuple[int, ...] = ()
    head_sha256: str = GENESIS_SHA256


def encode_record(record: dict[str, Any]) -> bytes:
    """Serialise a record as one canonical UTF-8 JSON line, no newline.

    Raises:
        ValueError: the record contains a value JSON cannot represent
            (an object of another type, NaN or infinity).
    """
    options: dict[str, Any] = {
        "sort_keys": True,
        "separators": (",", ":"),
        "allow_nan": False,
    }
    try:
        text = json.dumps(record, ensure_ascii=False, **options)
    except TypeError as error:
        raise ValueError(f"audit record is not JSON-serialisable: {error}") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form; \u escapes keep it exact.
        return json.dumps(record, ensure_ascii=True, **options).encode("ascii")


def line_sha256(line: bytes) -> str:
    """Hash one line's bytes, without its newline, as the chain does."""
    return hashlib.sha256(line).hexdigest()


def decode_line(line: bytes) -> dict[str, Any] | None:
    """Decode one line into a record, or None when it is not a JSON object."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def iter_lines(
    file: BinaryIO, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (offset, line without newline, ended by a newline) from ``start``.

    Reads in blocks up to ``end`` (the end of the file when None), so a
    huge log never has to fit in memory at once. The last item has False
    when the bytes read do not end with a newline.
    """
    file.seek(start)
    offset = start
    remaining = -1 if end is None else max(0, end - start)
    pending = bytearray()
    while remaining != 0:
        block = file.read(BLOCK_SIZE if remaining < 0 else min(BLOCK_SIZE, remaining))
        if not block:
            break
        if remaining > 0:
            remaining -= len(block)
        # Only the new block is searched, so a line longer than many
        # blocks costs linear time.
        begin = 0
        searched = len(pending)
        pending += block
        while (newline := pending.find(b"\n", searched)) >= 0:
            line = bytes(pending[begin:newline])
            yield offset, line, True
            offset += len(line) + 1
            begin = searched = newline + 1
        del pending[:begin]
    if pending:
        yield offset, bytes(pending), False


def iter_lines_backwards(file: BinaryIO, end: int) -> Iterator[bytes]:
    """Yield the complete lines before offset ``end``, newest first.

    Reads blocks from the end towards the start. Bytes after the last
    newline before ``end`` belong to a write in progress or a torn write
    and are not yielded.
    """
    position = _last_newline(file, end)
    if position < 0:
        return
    # Pieces of the line being read, last piece first.
    pieces: list[bytes] = []
    while position > 0:
        size = min(BLOCK_SIZE, position)
        position -= size
        file.seek(position)
        parts = file.read(size).split(b"\n")
        pieces.append(parts[-1])
        if len(parts) > 1:
            yield b"".join(reversed(pieces))
            yield from reversed(parts[1:-1])
            pieces = [parts[0]]
    yield b"".join(reversed(pieces))


def _last_newline(file: BinaryIO, end: int) -> int:
    position = end
    while position > 0:
        size = min(BLOCK_SIZE, position)
        position -= size
        file.seek(position)
        found = file.read(size).rfind(b"\n")
        if found >= 0:
            return position + found
    return -1


def verify_chain(path: Path) -> VerifyResult:
    """Check every link of the audit log at ``path``, naming the first break.

    A file that cannot be read gives a failed result whose reason names
    the OS error, never an exception. The log may be in use: the check
    covers the lines complete when it starts.
    """
    try:
        with open(path, "rb") as file:
            # Writers hold an exclusive flock during each append, so under
            # a shared one the file ends at a line boundary, unless a
            # writer died during its write.
            fcntl.flock(file.fileno(), fcntl.LOCK_SH)
            end = os.fstat(file.fileno()).st_size
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)
            return _verify_lines(file, end)
    except OSError as error:
        return VerifyResult(
            ok=False,
            lines=0,
            first_broken_line=None,
            reason=f"cannot read {path}: {os.strerror(error.errno or 0)}",
        )


def _verify_lines(file: BinaryIO, end: int) -> VerifyResult:
    expected = GENESIS_SHA256
    last_record_line = 0
    torn: list[int] = []
    broken_line: int | None = None
    reason = ""
    count = 0
    for count, (_, line, ended) in enumerate(iter_lines(file, end=end), start=1):
        if broken_line is not None:
            continue  # past a break nothing can be trusted; only count
        record = decode_line(line)
        if record is None or not ended:
            torn.append(count)
            if record is None:
                continue
        prev = record.get(PREV_FIELD)
        if prev != expected:
            broken_line = count
            reason = _describe_break(count, prev, last_record_line)
            continue
        expected = line_sha256(line)
        last_record_line = count

    if broken_line is None and not torn:
        return VerifyResult(
            ok=True,
            lines=count,
            first_broken_line=None,
            reason=f"{count} lines, chain intact",
            head_sha256=expected,
        )
    parts = []
    if torn:
        listed = ", ".join(str(number) for number in torn[:10])
        more = f" and {len(torn) - 10} more" if len(torn) > 10 else ""
        parts.append(
            f"line {listed}{more}: not a JSON object ended by a newline (a"
            " write cut short by a crash, or a changed byte)"
        )
    if reason:
        parts.append(reason)
    return VerifyResult(
        ok=False,
        lines=count,
        first_broken_line=min([*torn[:1], *[n for n in [broken_line] if n]]),
        reason="; ".join(parts),
        torn_lines=tuple(torn),
        head_sha256=expected,
    )


def _describe_break(number: int, prev: object, last_record_line: int) -> str:
    if last_record_line:
        expected = (
            f"the SHA-256 of line {last_record_line}, the record before it:"
            f" line {last_record_line} was changed, or lines were removed,"
            " inserted or reordered between them"
        )
    else:
        expected = (
            "64 zeros, which the first record carries: earlier lines were"
            " removed or this line was changed"
        )
    return f"line {number}: {PREV_FIELD} is {_short(prev)}, expected {expected}"


def _short(value: object) -> str:
    if not isinstance(value, str):
        return "missing" if value is None else repr(value)[:20]
    return repr(value[:12] + "...") if len(value) > 12 else repr(value)
