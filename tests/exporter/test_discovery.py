"""Discovery of running containers: names, events, resync and engine loss."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import docker
import pytest

from exporter.discovery import Discovery
from exporter.docker_api import (
    DockerApi,
    DockerUnavailableError,
    canonical_name,
    container_info_from_inspect,
    parse_docker_time,
)
from exporter.model import ContainerInfo
from tests.conftest import RunContainer
from tests.exporter.fakes import HEX_A, HEX_B, make_info
from tests.services import wait_until


class FakeStream:
    """An events stream that blocks until closed, like an idle engine."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.closed = threading.Event()

    def __iter__(self) -> Any:
        yield from self.events
        self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


class EndedStream:
    """An events stream that the engine closed at once."""

    def __iter__(self) -> Any:
        return iter(())

    def close(self) -> None:
        pass


class FakeDockerClient:
    """The Docker interface with containers and an outage set by the test."""

    base_url = "unix:///fake.sock"

    def __init__(self, containers: list[ContainerInfo]) -> None:
        self.running = {info.id: info for info in containers}
        self.down = False
        self.calls: list[str] = []
        self.streams: list[FakeStream] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise DockerUnavailableError("engine at unix:///fake.sock is down")

    def ping(self) -> None:
        self._call("ping")

    def running_containers(self) -> list[ContainerInfo]:
        self._call("list")
        return list(self.running.values())

    def inspect(self, container_id: str) -> ContainerInfo | None:
        self._call("inspect")
        return self.running.get(container_id)

    def events(self, since: float, until: float) -> FakeStream:
        self._call("events")
        stream = FakeStream([])
        self.streams.append(stream)
        return stream

    def stats(self, container_id: str) -> dict[str, Any]:
        self._call("stats")
        return {}

    def close(self) -> None:
        pass


def event(action: str, container_id: str) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": container_id}}


def test_canonical_name_skips_link_aliases() -> None:
    names = ["/proxy/app", "/app", "/worker/app"]
    assert canonical_name(names, fallback="x") == "app"


def test_canonical_name_falls_back() -> None:
    assert canonical_name(["/a/b"], fallback="20405e1ffe5c") == "20405e1ffe5c"


def test_inspect_reply_becomes_container_info() -> None:
    attrs = {
        "Id": HEX_A,
        "Name": "/app",
        "Image": "sha256:" + "1" * 64,
        "Config": {"Image": "busybox:latest", "Labels": {"warden.protect": "true"}},
        "State": {
            "Running": True,
            "Paused": False,
            "Pid": 1234,
            "StartedAt": "2026-01-01T00:00:01.123456789Z",
        },
        "HostConfig": {
            "NanoCpus": 500_000_000,
            "CpuQuota": 0,
            "CpuPeriod": 0,
            "CpusetCpus": "0-1",
            "Memory": 268_435_456,
            "PidsLimit": -1,
        },
    }
    info = container_info_from_inspect(attrs)
    assert info.id == HEX_A
    assert info.name == "app"
    assert info.image == "busybox:latest"
    assert info.image_id == "sha256:" + "1" * 64
    assert info.pid == 1234
    assert info.started_at == pytest.approx(1767225601.123456)
    assert info.nano_cpus == 500_000_000
    assert info.cpuset_cpus == "0-1"
    assert info.memory_limit == 268_435_456
    assert info.pids_limit == 0
    assert info.protected is True


def test_null_fields_of_inspect_reply() -> None:
    attrs = {
        "Id": HEX_A,
        "Name": "/app",
        "Config": {"Labels": None},
        "State": {"Running": True, "StartedAt": "0001-01-01T00:00:00Z"},
        "HostConfig": {"PidsLimit": None, "Memory": 0},
    }
    info = container_info_from_inspect(attrs)
    assert info.labels == {}
    assert info.started_at == 0.0
    assert info.pids_limit == 0


def test_docker_time_with_offset() -> None:
    assert parse_docker_time("2026-01-01T01:00:00+01:00") == 1767225600.0


def test_die_event_removes_container() -> None:
    removed: list[str] = []
    client = FakeDockerClient([make_info(HEX_A, "a"), make_info(HEX_B, "b")])
    discovery = Discovery(client, on_remove=removed.append)
    discovery.resync()
    del client.running[HEX_A]
    discovery.apply_event(event("die", HEX_A))
    assert [info.id for info in discovery.containers()] == [HEX_B]
    assert removed == [HEX_A]


def test_start_event_reports_added_container() -> None:
    client = FakeDockerClient([])
    seen: list[tuple[str, bool]] = []
    discovery = Discovery(client)
    # The callback runs once the container is in the cache, so that
    # anything it starts sees the container listed.
    discovery.on_add = lambda info: seen.append(
        (info.id, info in discovery.containers())
    )
    client.running[HEX_A] = make_info(HEX_A, "a")
    discovery.apply_event(event("start", HEX_A))
    discovery.apply_event(event("rename", HEX_A))
    assert seen == [(HEX_A, True)]


def test_restart_reports_added_again() -> None:
    client = FakeDockerClient([make_info(HEX_A, "a", pid=100)])
    added: list[int] = []
    discovery = Discovery(client, on_add=lambda info: added.append(info.pid))
    discovery.resync()
    client.running[HEX_A] = make_info(HEX_A, "a", pid=200)
    discovery.apply_event(event("start", HEX_A))
    discovery.resync()
    assert added == [100, 200]


def test_rename_event_updates_name() -> None:
    client = FakeDockerClient([make_info(HEX_A, "old")])
    discovery = Discovery(client)
    discovery.resync()
    client.running[HEX_A] = make_info(HEX_A, "new")
    discovery.apply_event(event("rename", HEX_A))
    assert [info.name for info in discovery.containers()] == ["new"]


def test_start_event_of_stopped_container() -> None:
    client = FakeDockerClient([])
    discovery = Discovery(client)
    discovery.apply_event(event("start", HEX_A))
    assert discovery.containers() == []


def test_update_event_with_attributes() -> None:
    client = FakeDockerClient([make_info(HEX_A, "a")])
    discovery = Discovery(client)
    client.running[HEX_A] = make_info(HEX_A, "a", memory_limit=1024)
    discovery.apply_event(event("update", HEX_A))
    assert [info.memory_limit for info in discovery.containers()] == [1024]


def test_resync_heals_missed_removal() -> None:
    removed: list[str] = []
    client = FakeDockerClient([make_info(HEX_A, "a")])
    discovery = Discovery(client, on_remove=removed.append)
    discovery.resync()
    client.running.clear()
    discovery.resync()
    assert discovery.containers() == []
    assert removed == [HEX_A]


def test_engine_loss_logs_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeDockerClient([make_info(HEX_A, "a")])
    client.down = True
    discovery = Discovery(client, backoff_initial=0.01, backoff_max=0.02)
    with caplog.at_level(logging.INFO, logger="exporter.discovery"):
        discovery.start()
        wait_until(lambda: discovery.api_errors >= 5, timeout=5)
        assert discovery.up is False
        client.down = False
        wait_until(lambda: discovery.up, timeout=5)
        discovery.stop()
    unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
    reachable = [r for r in caplog.records if "reachable" in r.getMessage()]
    assert len(unavailable) == 1
    assert len(reachable) == 1
    assert [info.id for info in discovery.containers()] == [HEX_A]


def test_engine_loss_keeps_cache() -> None:
    client = FakeDockerClient([make_info(HEX_A, "a")])
    discovery = Discovery(client, backoff_initial=0.01, backoff_max=0.02)
    discovery.start()
    wait_until(lambda: discovery.up, timeout=5)
    client.down = True
    client.streams[-1].close()
    wait_until(lambda: not discovery.up, timeout=5)
    discovery.stop()
    assert [info.id for info in discovery.containers()] == [HEX_A]


def test_backoff_doubles_up_to_cap() -> None:
    client = FakeDockerClient([])
    client.down = True
    discovery = Discovery(client, backoff_initial=0.5, backoff_max=4.0)
    waits: list[float] = []

    def record(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 7:
            discovery._stop.set()

    discovery._pause = record  # type: ignore[method-assign]
    discovery._run()
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]


def test_backoff_resets_after_success() -> None:
    client = FakeDockerClient([])
    client.down = True
    discovery = Discovery(client, backoff_initial=0.5, backoff_max=4.0)
    waits: list[float] = []

    def record(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            # The engine returns, and its events stream ends at once. The
            # next failure must start the backoff from the beginning.
            client.down = False
        if len(waits) == 4:
            client.down = True
        if len(waits) == 5:
            discovery._stop.set()

    client.events = lambda since, until: EndedStream()  # type: ignore[method-assign]
    discovery._pause = record  # type: ignore[method-assign]
    discovery._run()
    assert waits[:3] == [0.5, 1.0, 2.0]
    assert waits[4] == 0.5


def test_stop_closes_events_stream() -> None:
    client = FakeDockerClient([])
    discovery = Discovery(client)
    discovery.start()
    wait_until(lambda: client.streams, timeout=5)
    discovery.stop(timeout=5)
    assert client.streams[0].closed.is_set()


@pytest.fixture
def engine_discovery(docker_client: docker.DockerClient) -> Any:
    api = DockerApi(timeout=10)
    discovery = Discovery(api, resync_interval=3)
    discovery.start()
    assert discovery.wait_synced(10)
    yield discovery
    discovery.stop()
    api.close()


def find(discovery: Discovery, container_id: str) -> ContainerInfo | None:
    for info in discovery.containers():
        if info.id == container_id:
            return info
    return None


@pytest.mark.docker
def test_events_follow_real_container(
    engine_discovery: Discovery, run_container: RunContainer
) -> None:
    container = run_container("sleep 3600", nano_cpus=500_000_000, pids_limit=64)
    info = wait_until(lambda: find(engine_discovery, container.id), timeout=10)
    assert info.name == container.name
    assert info.nano_cpus == 500_000_000
    assert info.pids_limit == 64
    assert info.pid > 0

    container.rename(container.name + "-renamed")
    wait_until(
        lambda: getattr(find(engine_discovery, container.id), "name", "").endswith(
            "-renamed"
        ),
        timeout=10,
        message="rename to reach discovery",
    )
    container.pause()
    wait_until(
        lambda: getattr(find(engine_discovery, container.id), "paused", False),
        timeout=10,
        message="pause to reach discovery",
    )
    container.unpause()
    container.remove(force=True)
    wait_until(
        lambda: find(engine_discovery, container.id) is None,
        timeout=10,
        message="removal to reach discovery",
    )


@pytest.mark.docker
def test_discovery_survives_resync_rounds(
    engine_discovery: Discovery, run_container: RunContainer
) -> None:
    # The resync interval is 3 s, so the stream is reopened during the wait.
    time.sleep(7)
    container = run_container("sleep 3600")
    wait_until(lambda: find(engine_discovery, container.id), timeout=10)
    assert engine_discovery.up is True
