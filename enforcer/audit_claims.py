"""Claims on alert occurrences whose decision is in progress.

A decision makes its Docker calls outside the audit log's lock, because a
stop can wait for its whole grace period. Until its record is written,
another delivery of the same occurrence must not act as well. A claim
marks the occurrence as in progress. The threads of this process see it
in a set. Other processes that share the log file see an
open-file-description lock (``F_OFD_SETLK``, Linux 3.15 and later) on one
byte of the file far past its end. The kernel drops that lock when the
file is closed or its process dies, so a crash during an action leaves no
claim behind. Byte-range locks and ``flock`` do not interact on Linux, so
the claims never block the log's own lock.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import struct
import threading

logger = logging.getLogger(__name__)

# Each key locks one byte at REGION_START plus 56 bits of its SHA-256, far
# past any real end of file. Two keys share a byte once in 2**56 pairs.
# If two such keys were decided at once, the second would be recorded as a
# duplicate, and the next repeat of its alert would decide it.
REGION_START = 1 << 62
OFFSET_BYTES = 7

# struct flock in the platform's C layout: l_type, l_whence, l_start,
# l_len, l_pid. Python builds with 64-bit off_t, and l_pid must be 0 for
# open-file-description locks.
_FLOCK_FORMAT = "@hhqqi"
# Linux's value of F_OFD_SETLK, for Pythons whose fcntl module lacks it.
_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)


def claim_offset(key: str) -> int:
    """Return the byte of the log file that stands for ``key``'s claim."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return REGION_START + int.from_bytes(digest[:OFFSET_BYTES], "big")


class OccurrenceClaims:
    """The occurrences this process is deciding, locked against other processes.

    Safe to share between threads. Call ``try_claim`` while holding the
    audit log's lock, after checking that the key is not decided, so that
    no other process can record the key between the check and the claim.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claimed: dict[str, int] = {}
        self._warned = False

    def try_claim(self, fd: int, key: str) -> bool:
        """Claim ``key`` on the open log file ``fd``; False when it is claimed."""
        with self._lock:
            if key in self._claimed:
                return False
            if not self._lock_byte(fd, claim_offset(key)):
                return False
            self._claimed[key] = fd
            return True

    def release(self, key: str) -> None:
        """Release a claim taken by ``try_claim``; unknown keys are ignored."""
        with self._lock:
            fd = self._claimed.pop(key, None)
        if fd is None:
            return
        try:
            _set_lock(fd, fcntl.F_UNLCK, claim_offset(key))
        except OSError as error:
            # The file was closed or reopened, which dropped the lock anyway.
            logger.debug("claim on %s not unlocked: %s", key, error)

    def reset(self) -> None:
        """Forget every claim, for a forked child whose file is reopened."""
        self._lock = threading.Lock()
        self._claimed = {}

    def __len__(self) -> int:
        return len(self._claimed)

    def _lock_byte(self, fd: int, offset: int) -> bool:
        try:
            _set_lock(fd, fcntl.F_WRLCK, offset)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                return False  # another process has claimed the key
            # A file system without byte-range locks, or a kernel before
            # 3.15: the claim still holds for the threads of this process.
            if not self._warned:
                self._warned = True
                logger.warning(
                    "audit log cannot take byte-range locks (%s); another"
                    " enforcer sharing the log may act on an alert that this"
                    " one is acting on",
                    os.strerror(error.errno or 0),
                )
        return True


def _set_lock(fd: int, lock_type: int, offset: int) -> None:
    request = struct.pack(_FLOCK_FORMAT, lock_type, os.SEEK_SET, offset, 1, 0)
    fcntl.fcntl(fd, _F_OFD_SETLK, request)
