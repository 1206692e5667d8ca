"""Running containers and their metadata, kept fresh from Docker events.

A scrape reads the cache and makes no Docker API call. One background
thread fills the cache with a full list, then follows the events stream
until the next full resync, which heals any event that was missed. When
the engine cannot be reached, the thread retries with capped exponential
backoff and logs once per change of state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from exporter.docker_api import DockerApiError, DockerClient
from exporter.model import ContainerInfo

log = logging.getLogger(__name__)

# Events after which the container is gone from the running set.
_GONE_EVENTS = frozenset({"die", "destroy"})


class Discovery:
    """Cache of running containers keyed by the full 64-hex container ID.

    Args:
        client: Docker API access.
        resync_interval: seconds between two full lists of containers.
        backoff_initial: first wait, in seconds, after the engine failed.
        backoff_max: cap of the wait, in seconds, between reconnect attempts.
        on_remove: called with the ID of each container that leaves the
            cache, so that per-container state elsewhere can be dropped.
        on_add: called with each container that enters the cache, after it
            is in the cache, for example to take a first CPU read at once.
    """

    def __init__(
        self,
        client: DockerClient,
        resync_interval: float = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        on_remove: Callable[[str], None] | None = None,
        on_add: Callable[[ContainerInfo], None] | None = None,
    ) -> None:
        self.client = client
        self.resync_interval = resync_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_remove = on_remove
        self.on_add = on_add
        self._containers: dict[str, ContainerInfo] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stream_lock = threading.Lock()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._up = False
        self._synced = threading.Event()
        self.api_errors = 0

    @property
    def up(self) -> bool:
        """Whether the last call to the engine succeeded."""
        return self._up

    def containers(self) -> list[ContainerInfo]:
        """Return the running containers known now, in no particular order."""
        with self._lock:
            return list(self._containers.values())

    def start(self) -> None:
        """Start the background thread that keeps the cache fresh."""
        self._thread = threading.Thread(
            target=self._run, name="warden-discovery", daemon=True
        )
        self._thread.start()

    def wait_synced(self, timeout: float) -> bool:
        """Wait for the first full list and return whether it arrived in time."""
        return self._synced.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread and close the events stream."""
        self._stop.set()
        with self._stream_lock:
            if self._stream is not None:
                self._stream.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.backoff_initial
        while not self._stop.is_set():
            try:
                self.sync_once()
                delay = self.backoff_initial
            except DockerApiError as error:
                self._record_failure(error)
                self._pause(delay)
                delay = min(delay * 2, self.backoff_max)
            except Exception:
                # Discovery must outlive a bug in handling one event, so the
                # exporter keeps serving the containers it has cached.
                log.exception("discovery failed; retrying in %s s", delay)
                self._pause(delay)
                delay = min(delay * 2, self.backoff_max)

    def _pause(self, seconds: float) -> None:
        """Wait before the next attempt, returning early when stopped."""
        self._stop.wait(seconds)

    def sync_once(self) -> None:
        """List all containers, then apply events until the next resync is due.

        Raises:
            DockerApiError: the engine failed; the cache keeps its content.
        """
        since = time.time()
        self.resync()
        until = since + self.resync_interval
        stream = self.client.events(since=since, until=until)
        with self._stream_lock:
            self._stream = stream
        try:
            if self._stop.is_set():
                return
            for event in stream:
                self.apply_event(event)
                if self._stop.is_set():
                    return
            if time.time() < until - 1:
                # A stream that ends early means the engine went away or
                # closed it; a short wait keeps this loop from spinning.
                self._pause(self.backoff_initial)
        except DockerApiError:
            if self._stop.is_set():
                return
            raise
        finally:
            with self._stream_lock:
                self._stream = None
                stream.close()

    def resync(self) -> None:
        """Replace the cache with a full list of the running containers."""
        infos = self.client.running_containers()
        self._record_success()
        fresh = {info.id: info for info in infos}
        with self._lock:
            removed = [cid for cid in self._containers if cid not in fresh]
            added = [info for cid, info in fresh.items() if cid not in self._containers]
            self._containers = fresh
        for container_id in removed:
            self._removed(container_id)
        for info in added:
            self._added(info)
        self._synced.set()
        log.debug("resync found %d running containers", len(fresh))

    def apply_event(self, event: dict[str, Any]) -> None:
        """Update the cache for one event of the Docker events stream."""
        if event.get("Type") != "container":
            return
        action = str(event.get("Action") or event.get("status") or "")
        # Exec events carry a suffix, as in "exec_start: sh", so only the
        # part before the colon names the action.
        action = action.split(":", 1)[0]
        container_id = str((event.get("Actor") or {}).get("ID") or event.get("id"))
        if not container_id:
            return
        log.debug("event %s for container %s", action, container_id)
        if action in _GONE_EVENTS:
            self._forget(container_id)
            return
        info = self.client.inspect(container_id)
        if info is None:
            self._forget(container_id)
            return
        with self._lock:
            known = self._containers.get(container_id)
            self._containers[container_id] = info
        if known is None or known.pid != info.pid:
            self._added(info)

    def _forget(self, container_id: str) -> None:
        with self._lock:
            known = self._containers.pop(container_id, None)
        if known is not None:
            self._removed(container_id)

    def _added(self, info: ContainerInfo) -> None:
        if self.on_add is not None:
            self.on_add(info)

    def _removed(self, container_id: str) -> None:
        if self.on_remove is not None:
            self.on_remove(container_id)

    def _record_success(self) -> None:
        if not self._up:
            log.info("Docker engine at %s is reachable", _address(self.client))
        self._up = True

    def _record_failure(self, error: DockerApiError) -> None:
        self.api_errors += 1
        if self._up or self.api_errors == 1:
            log.error(
                "Docker engine unavailable, serving the last known containers "
                "and retrying with backoff: %s",
                error,
            )
        self._up = False


def _address(client: DockerClient) -> str:
    return str(getattr(client, "base_url", "?"))
