"""An exclusive lock on the state folder, held while a stack runs.

Two stacks on one state folder would overwrite each other's token,
configs and rule links, and two Prometheus processes would write the
same database. The lock is a ``flock`` on ``<state>/stack.lock``, so the
kernel releases it when the holder exits, however it exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from deploy.processes import StackProcessError

STACK_REMEDY = "stop that stack, or pass --state (WARDEN_STATE) with another folder"


class StateLock:
    """A lock file in one state folder, and whether this process holds it.

    Args:
        state: the state folder.
        file_name: the lock file's name; the stack and the demo use their own.
        holder: who holds the lock, as the error names it.
        remedy: what to do when the lock is taken, for the error message.
    """

    def __init__(
        self,
        state: Path,
        file_name: str = "stack.lock",
        holder: str = "another stack",
        remedy: str = STACK_REMEDY,
    ) -> None:
        self.state = state
        self.path = state / file_name
        self.holder = holder
        self.remedy = remedy
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StackProcessError naming its holder."""
        self.state.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StackProcessError(
                f"state folder {self.state} is in use by {self.holder} (pid "
                f"{holder}); {self.remedy}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up; does nothing when this process does not hold it."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None
