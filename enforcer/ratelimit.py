"""Sliding-window limit on the actions the enforcer takes."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """Allow at most ``limit`` events in any window of ``window_seconds``.

    Safe to share between threads. State lives in one process, which is why
    the server runs a single worker.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit {limit}; expected at least 1")
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._events: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        """Count one event and return True, or return False when over the limit."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._events) >= self.limit:
                return False
            self._events.append(now)
            return True

    def in_window(self) -> int:
        """Return how many events the current window contains."""
        with self._lock:
            self._expire(self._clock())
            return len(self._events)

    def _expire(self, now: float) -> None:
        while self._events and self._events[0] <= now - self.window_seconds:
            self._events.popleft()
