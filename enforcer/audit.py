"""The enforcer's audit log: one fsynced, hash-chained JSON line per decision.

The log is the enforcer's memory across restarts: every alert occurrence
(``fingerprint@startsAt``) recorded with a final result is never acted on
again. Threads share one ``AuditLog``; processes share the file, and
``locked()`` serialises them with ``flock``. A decision checks and claims
its key under the lock, acts without it, and appends its record under it
again; the claims are in ``enforcer.audit_claims``. The line format and the
chain are in ``enforcer.audit_chain``.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from enforcer.audit_chain import (
    GENESIS_SHA256,
    PREV_FIELD,
    VerifyResult,
    decode_line,
    encode_record,
    iter_lines,
    line_sha256,
    verify_chain,
)
from enforcer.audit_claims import OccurrenceClaims
from enforcer.audit_events import EventQueryError, parse_since, scan_events

__all__ = [
    "AuditError",
    "AuditLog",
    "EventQueryError",
    "VerifyResult",
    "verify_chain",
]

logger = logging.getLogger(__name__)

# Results that leave an alert occurrence undecided, so that a later
# delivery of it is decided again. An error decided nothing, and a
# rate-limited alert may act once the rate allows it. A resolved or invalid
# alert was never looked up. A duplicate defers to the record of the
# delivery it repeats, which may itself end in an error.
UNDECIDED_RESULTS = frozenset(
    {"error", "rate_limited", "skipped_resolved", "skipped_invalid", "duplicate"}
)

# Lines that are not JSON objects get a warning each, up to this many.
MAX_LINE_WARNINGS = 5

# check_writable() fails below this much free space, before a write would.
MIN_FREE_BYTES = 1 << 20


class AuditError(Exception):
    """The audit log cannot be opened, read or written."""


class AuditLog:
    """An append-only audit log file shared by threads and processes.

    Example::

        log = AuditLog(Path(".warden/audit.jsonl"))
        with log.locked():
            claimed = not log.is_decided(alert.key) and log.claim(alert.key)
        if claimed:
            try:
                ...  # act
                with log.locked():
                    log.append(record)
            finally:
                log.release(alert.key)
    """

    def __init__(self, path: Path) -> None:
        """Open or create the log at ``path`` and read what it holds.

        Raises:
            AuditError: the file or its folder cannot be created, opened
                or read; the message names the path and the OS error.
        """
        self.path = path
        self._thread_lock = threading.Lock()
        self._owner: int | None = None
        # NOTE: one entry per decided alert for the life of the log, about
        # 100 bytes each; rotating the log would need a carried-over set.
        self._decided: set[str] = set()
        self._claims = OccurrenceClaims()
        self._names: dict[str, set[str]] = {}
        self._ids: set[str] = set()
        self._offset = 0
        self._lines = 0
        self._last_sha256 = GENESIS_SHA256
        self._broken_lines = 0
        self._invalid_lines = 0
        self._fd = self._open()
        try:
            with self.locked():
                pass  # reads every line, and ends a torn last line
        except AuditError:
            self.close()
            raise
        _open_logs.add(self)
        logger.info(
            "audit log %s open: %d lines, %d decided alerts, %d lines not"
            " JSON objects, %d chain breaks",
            self.path,
            self._lines,
            len(self._decided),
            self._invalid_lines,
            self._broken_lines,
        )

    @property
    def lines(self) -> int:
        """Number of lines read or written so far, torn lines included."""
        return self._lines

    @property
    def last_sha256(self) -> str:
        """SHA-256 of the last record line: the head of the chain."""
        return self._last_sha256

    def close(self) -> None:
        """Close the file; the object cannot be used afterwards."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the log against other threads and processes; not re-entrant.

        On entry, lines appended by other processes since the last read
        are read, so ``is_decided`` includes their decisions.

        Raises:
            AuditError: the file was removed or replaced, or cannot be
                locked or read.
        """
        with self._thread_lock:
            if self._pid != os.getpid():
                # A forked child shares the parent's open file, and flock
                # does not exclude two holders of one open file.
                os.close(self._fd)
                self._fd = self._open()
            self._check_same_file()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError as error:
                raise AuditError(self._describe("cannot be locked", error)) from error
            try:
                self._owner = threading.get_ident()
                self._read_new_lines()
                yield
            finally:
                self._owner = None
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def is_decided(self, key: str) -> bool:
        """Tell whether an alert occurrence already has a final decision."""
        self._require_lock("is_decided")
        return key in self._decided

    def claim(self, key: str) -> bool:
        """Claim ``key`` for the calling thread; False when another holds it.

        The claim excludes the other threads of this process and every
        other process that shares the file, until ``release`` or until
        this process closes the file or exits.
        """
        self._require_lock("claim")
        return self._claims.try_claim(self._fd, key)

    def release(self, key: str) -> None:
        """Release a claim; call it after appending the claimed key's record."""
        self._claims.release(key)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write one record, chained and fsynced, and return it as written.

        Marks ``record["alert"]["key"]`` decided unless the result is one of
        ``UNDECIDED_RESULTS``.

        Raises:
            AuditError: the write or fsync failed. The file is truncated
                back to where it was, so no partial line stays behind.
            ValueError: the record is not JSON-serialisable.
        """
        self._require_lock("append")
        written = dict(record)
        written[PREV_FIELD] = self._last_sha256
        line = encode_record(written)
        try:
            start = os.fstat(self._fd).st_size
        except OSError as error:
            raise AuditError(self._describe("cannot be checked", error)) from error
        try:
            self._write_all(line + b"\n")
            os.fsync(self._fd)
        except OSError as error:
            self._truncate_to(start)
            raise AuditError(self._describe("cannot be written", error)) from error

        self._offset = start + len(line) + 1
        self._learn(written, line)
        return written

    def check_writable(self) -> None:
        """Check that appends can succeed now.

        Raises:
            AuditError: the file was removed or replaced, its file system
                is read-only, or less than 1 MiB is free.
        """
        self._check_same_file()
        try:
            usage = os.fstatvfs(self._fd)
        except OSError as error:
            raise AuditError(self._describe("cannot be checked", error)) from error
        if usage.f_flag & os.ST_RDONLY:
            raise AuditError(
                f"audit log {self.path} is on a read-only file system;"
                " remount it read-write or set --audit.path"
            )
        free = usage.f_bavail * usage.f_frsize
        if free < MIN_FREE_BYTES:
            raise AuditError(
                f"audit log {self.path}: only {free} bytes free, expected at"
                f" least {MIN_FREE_BYTES}; free space on its file system"
            )

    def events(
        self,
        container: str | None = None,
        since: datetime | str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` records, newest first.

        ``container`` matches, as Docker resolves it, a full container ID,
        else a container name, else a unique ID prefix. ``since`` keeps
        records whose ``time`` is at or after it; a string is parsed as
        RFC 3339. The file is read backwards in blocks, so the cost grows
        with the records skipped, not with the size of the log.

        Raises:
            EventQueryError: ``limit`` is not positive, ``since`` is not an
                RFC 3339 time with a zone, or ``container`` is a prefix of
                several IDs.
            AuditError: the file cannot be read.
        """
        if limit < 1:
            raise EventQueryError(f"limit {limit} is invalid: expected 1 or more")
        start = parse_since(since)
        with self.locked():
            selector = self._container_field(container)
            end = self._offset
        if selector == ("container_id", ""):
            return []  # no container ID starts with the prefix
        try:
            return scan_events(self.path, end, selector, start, limit)
        except OSError as error:
            raise AuditError(self._describe("cannot be read", error)) from error

    def _open(self) -> int:
        self._pid = os.getpid()
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            raise AuditError(
                f"audit log {self.path}: {folder} is not a folder; set"
                " --audit.path to a file inside a folder"
            ) from None
        except OSError as error:
            raise AuditError(
                f"audit log {self.path}: cannot create folder {folder}:"
                f" {error.strerror}; check --audit.path"
            ) from error
        try:
            flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                fd = os.open(self.path, flags)
            else:
                _fsync_folder(folder)
        except OSError as error:
            raise AuditError(self._describe("cannot be opened", error)) from error

        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise AuditError(
                f"audit log {self.path} is not a regular file; set --audit.path"
                " to a file path"
            )
        if mode & 0o022:
            logger.warning(
                "audit log %s has mode %o: others can write it; chmod 600 it",
                self.path,
                stat.S_IMODE(mode),
            )
        return fd

    def _check_same_file(self) -> None:
        try:
            current = os.stat(self.path)
        except OSError as error:
            raise AuditError(
                f"audit log {self.path} was removed or cannot be reached:"
                f" {error.strerror}; restart the enforcer to start a new log"
            ) from error
        try:
            opened = os.fstat(self._fd)
        except OSError as error:
            raise AuditError(self._describe("cannot be checked", error)) from error
        if (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino):
            raise AuditError(
                f"audit log {self.path} was replaced by another file; restart"
                " the enforcer to use it"
            )

    def _read_new_lines(self) -> None:
        size = os.fstat(self._fd).st_size
        if size < self._offset:
            logger.warning(
                "audit log %s shrank from %d to %d bytes; reading it again"
                " from the start, decided alerts are kept",
                self.path,
                self._offset,
                size,
            )
            self._offset, self._lines = 0, 0
            self._last_sha256 = GENESIS_SHA256
        if size == self._offset:
            return
        try:
            with open(self._fd, "rb", closefd=False) as file:
                for offset, line, ended in iter_lines(file, self._offset):
                    if not ended:
                        self._end_torn_line(offset, line)
                    self._read_line(line, warn=ended)
                    self._offset = offset + len(line) + 1
        except OSError as error:
            raise AuditError(self._describe("cannot be read", error)) from error

    def _end_torn_line(self, offset: int, line: bytes) -> None:
        # The lock is held, so no writer is in the middle of this line: a
        # writer died during its write. Ending the line keeps its bytes for
        # inspection, and the next record chains to the last whole record.
        logger.warning(
            "audit log %s: line %d (%d bytes at offset %d) has no newline,"
            " a write cut short; it is kept but left out of the chain",
            self.path,
            self._lines + 1,
            len(line),
            offset,
        )
        try:
            self._write_all(b"\n")
            os.fsync(self._fd)
        except OSError as error:
            raise AuditError(self._describe("cannot be written", error)) from error

    def _read_line(self, line: bytes, warn: bool) -> None:
        record = decode_line(line)
        if record is None:
            self._lines += 1
            self._invalid_lines += 1
            # The first few are enough to point at the damage; a log of
            # garbage must not flood the log output.
            if warn and self._invalid_lines <= MAX_LINE_WARNINGS:
                logger.warning(
                    "audit log %s: line %d is not a JSON object; it is left"
                    " out of the chain, run verify-audit to check the log",
                    self.path,
                    self._lines,
                )
            return
        if record.get(PREV_FIELD) != self._last_sha256:
            self._broken_lines += 1
            if self._broken_lines == 1:
                logger.warning(
                    "audit log %s: chain broken at line %d; decided alerts"
                    " are still read, run verify-audit to check the log",
                    self.path,
                    self._lines + 1,
                )
        self._learn(record, line)

    def _learn(self, record: dict[str, Any], line: bytes) -> None:
        self._lines += 1
        self._last_sha256 = line_sha256(line)

        alert = record.get("alert")
        key = alert.get("key") if isinstance(alert, dict) else None
        if isinstance(key, str) and record.get("result") not in UNDECIDED_RESULTS:
            self._decided.add(key)

        container_id = record.get("container_id")
        if isinstance(container_id, str) and container_id:
            self._ids.add(container_id)
            name = record.get("container_name")
            if isinstance(name, str) and name:
                self._names.setdefault(name, set()).add(container_id)

    def _container_field(self, query: str | None) -> tuple[str, str] | None:
        # Resolves a query as Docker does: full ID, then name, then prefix.
        if not query:
            return None
        if query in self._ids:
            return "container_id", query
        if query in self._names:
            return "container_name", query
        matches = [known for known in self._ids if known.startswith(query)]
        if len(matches) > 1:
            raise EventQueryError(
                f"container {query!r} is a prefix of {len(matches)} container"
                " IDs; give more characters of the ID, or the name"
            )
        return "container_id", matches[0] if matches else ""

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            if written == 0:
                raise OSError(errno.EIO, "write returned 0 bytes")
            view = view[written:]

    def _truncate_to(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError:
            # The torn line left behind is ended and skipped on next read.
            logger.exception(
                "audit log %s: cannot truncate a failed write back to %d bytes",
                self.path,
                size,
            )

    def _require_lock(self, name: str) -> None:
        if self._owner != threading.get_ident():
            raise RuntimeError(f"call AuditLog.{name}() inside AuditLog.locked()")

    def _describe(self, failure: str, error: OSError) -> str:
        reason = error.strerror or str(error)
        return f"audit log {self.path} {failure}: {reason}; check --audit.path"


# Logs to reset in a forked child: a thread of the parent may have held
# a lock at the moment of the fork, and no thread of the child releases it.
_open_logs: weakref.WeakSet[AuditLog] = weakref.WeakSet()


def _reset_locks_after_fork() -> None:
    for log in list(_open_logs):
        log._thread_lock = threading.Lock()
        log._owner = None
        log._claims.reset()


os.register_at_fork(after_in_child=_reset_locks_after_fork)


def _fsync_folder(folder: Path) -> None:
    # Makes the new file's directory entry survive a power loss.
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
