"""StatsApiReader on recorded Docker stats replies."""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exporter.cpu import CpuUtilizationTracker
from exporter.model import ContainerGoneError, ContainerInfo
from exporter.stats_api import StatsApiReader, cpu_limit_from_info, sample_from_stats

FIXTURES = Path(__file__).parent / "fixtures" / "stats"
ID_A = "20405e1ffe5c0a1373b1cd5e1d61eb6a263076ae521e0598e26e9db8376b108b"
HOST_MEMORY = 64 * 1024**3
HOST_PIDS = 513262

INFO = ContainerInfo(
    id=ID_A,
    name="app",
    image="busybox:latest",
    image_id="sha256:" + "0" * 64,
    labels={},
    pid=4242,
    started_at=1_767_225_600.0,
)


def reply(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def utilization(
    previous: dict[str, Any], current: dict[str, Any], info: ContainerInfo = INFO
) -> tuple[float | None, float | None]:
    """Feed two replies through the mapping and the tracker; return (cores, ratio)."""
    tracker = CpuUtilizationTracker()
    tracker.update(info.id, sample_from_stats(info, previous))
    result = tracker.update(info.id, sample_from_stats(info, current))
    if result is None:
        return None, None
    return result.cores, result.ratio


class RecordedClient:
    """Return recorded replies per container ID, or raise a given error."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.calls: list[str] = []

    def stats(self, container_id: str) -> dict[str, Any]:
        self.calls.append(container_id)
        value = self.replies[container_id]
        if isinstance(value, BaseException):
            raise value
        return copy.deepcopy(value)  # type: ignore[no-any-return]


def test_one_shot_reply_gives_no_utilization() -> None:
    tracker = CpuUtilizationTracker()
    sample = sample_from_stats(INFO, reply("c1_one_shot"))
    assert sample.cpu_usage_seconds == pytest.approx(723.671739199)
    assert tracker.update(ID_A, sample) is None


def test_own_previous_sample_gives_cores() -> None:
    cores, _ = utilization(reply("c1_previous"), reply("c1_current"))
    assert cores == pytest.approx(0.4)


def test_precpu_stats_are_ignored() -> None:
    current = reply("c1_current")
    current["precpu_stats"] = reply("c1_previous")["cpu_stats"]
    sample = sample_from_stats(INFO, current)
    assert sample == sample_from_stats(INFO, reply("c1_current"))


def test_interval_divides_by_online_cpus() -> None:
    cores, _ = utilization(reply("c2_previous"), reply("c2_current"))
    assert cores == pytest.approx(0.752, abs=5e-4)


def test_percpu_length_without_online_cpus() -> None:
    previous, current = reply("c2_previous"), reply("c2_current")
    for data in (previous, current):
        del data["cpu_stats"]["online_cpus"]
    cores, _ = utilization(previous, current)
    # 15 possible CPUs: the best the reply allows, and why online_cpus wins.
    assert cores == pytest.approx(731308110 / (3890000000 / 15))


@pytest.mark.parametrize("online", [None, 0])
def test_no_cpu_count_gives_unknown(online: int | None) -> None:
    previous, current = reply("c4_previous"), reply("c4_current")
    for data in (previous, current):
        if online is None:
            del data["cpu_stats"]["online_cpus"]
        else:
            data["cpu_stats"]["online_cpus"] = online
    sample = sample_from_stats(INFO, current)
    assert sample.cpu_clock_seconds is None
    assert sample.cpu_usage_seconds == pytest.approx(14.0)
    assert utilization(previous, current) == (None, None)


def test_counter_reset_gives_no_value() -> None:
    assert utilization(reply("c3_previous"), reply("c3_current")) == (None, None)


def test_nano_cpus_limit_gives_ratio_one() -> None:
    info = replace(INFO, nano_cpus=4_000_000_000)
    cores, ratio = utilization(reply("c4_previous"), reply("c4_current"), info)
    assert cores == pytest.approx(4.0)
    assert ratio == pytest.approx(1.0)


def test_quota_limit_gives_ratio_one() -> None:
    info = replace(INFO, cpu_quota=400000, cpu_period=100000)
    _, ratio = utilization(reply("c4_previous"), reply("c4_current"), info)
    assert ratio == pytest.approx(1.0)


def test_no_limit_uses_host_cpus() -> None:
    _, ratio = utilization(reply("c4_previous"), reply("c4_current"))
    assert ratio == pytest.approx(0.1818, abs=1e-4)


@pytest.mark.parametrize(
    ("fields", "cores"),
    [
        ({"nano_cpus": 4_000_000_000}, 4.0),
        ({"cpu_quota": 400000, "cpu_period": 100000}, 4.0),
        ({"cpu_quota": 150000}, 1.5),
        ({"cpuset_cpus": "0-3,8"}, 5.0),
        ({"cpuset_cpus": "bogus"}, 22.0),
        ({}, 22.0),
    ],
)
def test_cpu_limit_from_host_config(fields: dict[str, Any], cores: float) -> None:
    assert cpu_limit_from_info(replace(INFO, **fields), online_cpus=22) == cores


def test_cpu_limit_unknown_without_cpus() -> None:
    assert cpu_limit_from_info(INFO, online_cpus=None) is None


def test_v1_memory_uses_total_inactive_file() -> None:
    sample = sample_from_stats(INFO, reply("c1_current"), HOST_MEMORY, HOST_PIDS)
    assert sample.memory_usage_bytes == 2387968
    assert sample.memory_working_set_bytes == 2387968 - 1912832
    assert sample.memory_limit_bytes == 67108864
    assert sample.pids == 1
    assert sample.pids_limit == 50


def test_v2_memory_uses_inactive_file() -> None:
    sample = sample_from_stats(INFO, reply("c4_current"), HOST_MEMORY, HOST_PIDS)
    assert sample.memory_working_set_bytes == 73400320
    assert sample.memory_limit_bytes == 268435456


def test_working_set_floored_at_zero() -> None:
    data = reply("c4_current")
    data["memory_stats"]["usage"] = 4096
    sample = sample_from_stats(INFO, data)
    assert sample.memory_working_set_bytes == 0


@pytest.mark.parametrize("limit", [None, 0, 2**64 - 1, 9223372036854771712])
def test_unlimited_memory_means_host_memory(limit: int | None) -> None:
    data = reply("c1_current")
    if limit is None:
        del data["memory_stats"]["limit"]
    else:
        data["memory_stats"]["limit"] = limit
    with_host = sample_from_stats(INFO, data, HOST_MEMORY, HOST_PIDS)
    without_host = sample_from_stats(INFO, data)
    assert with_host.memory_limit_bytes == HOST_MEMORY
    assert without_host.memory_limit_bytes is None


@pytest.mark.parametrize("limit", [None, 0, 2**64 - 1])
def test_unlimited_pids_means_host_limit(limit: int | None) -> None:
    data = reply("c1_current")
    if limit is None:
        del data["pids_stats"]["limit"]
    else:
        data["pids_stats"]["limit"] = limit
    sample = sample_from_stats(INFO, data, HOST_MEMORY, HOST_PIDS)
    assert sample.pids_limit == HOST_PIDS


def test_throttled_time_in_seconds() -> None:
    data = reply("c1_current")
    data["cpu_stats"]["throttling_data"]["throttled_time"] = 2_500_000_000
    assert sample_from_stats(INFO, data).cpu_throttled_seconds == 2.5


def test_unreported_fields_stay_none() -> None:
    sample = sample_from_stats(INFO, reply("c1_current"))
    assert sample.memory_oom_kills is None


def test_stopped_reply_means_gone() -> None:
    with pytest.raises(ContainerGoneError):
        sample_from_stats(INFO, reply("stopped"))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("cpu_stats", "cpu_usage", "total_usage"), "abc"),
        (("memory_stats", "usage"), -1),
        (("memory_stats", "stats", "total_inactive_file"), None),
        (("cpu_stats", "online_cpus"), [4]),
        (("pids_stats", "current"), True),
    ],
)
def test_malformed_field_leaves_only_it(path: tuple[str, ...], value: Any) -> None:
    data = reply("c1_current")
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    sample = sample_from_stats(INFO, data, HOST_MEMORY, HOST_PIDS)
    assert path[-1] in sample.errors["stats_parse"]
    if path[-1] == "total_inactive_file":
        assert sample.memory_working_set_bytes is None
    assert sample.memory_limit_bytes == 67108864
    assert sample.cpu_throttled_seconds == 0.0


def test_missing_sections_are_none() -> None:
    sample = sample_from_stats(INFO, {"read": "2026-01-01T00:00:01Z"})
    assert sample.cpu_usage_seconds is None
    assert sample.memory_usage_bytes is None
    assert sample.pids is None
    assert sample.errors == {}


def test_read_reports_client_failure() -> None:
    client = RecordedClient({ID_A: ValueError("Expecting value: line 1 column 90")})
    sample = StatsApiReader(client).read(INFO)
    assert "Expecting value" in sample.errors["stats_read"]
    assert sample.cpu_usage_seconds is None


class DockerTimeoutError(Exception):
    """A client's own timeout exception, named as clients name theirs."""


@pytest.mark.parametrize(
    "error", [TimeoutError("timed out"), DockerTimeoutError("no reply in 10 s")]
)
def test_read_reports_client_timeout(error: Exception) -> None:
    sample = StatsApiReader(RecordedClient({ID_A: error})).read(INFO)
    assert str(error) in sample.errors["stats_timeout"]
    assert "stats_read" not in sample.errors


def test_read_rejects_non_object_reply() -> None:
    client = RecordedClient({ID_A: ["not", "an", "object"]})
    sample = StatsApiReader(client).read(INFO)
    assert "expected a JSON object" in sample.errors["stats_parse"]


def test_read_all_leaves_out_gone() -> None:
    infos = [replace(INFO, id=f"{n:064x}") for n in range(3)]
    client = RecordedClient(
        {
            infos[0].id: reply("c1_current"),
            infos[1].id: ContainerGoneError(infos[1].id),
            infos[2].id: reply("stopped"),
        }
    )
    samples = StatsApiReader(client).read_all(infos)
    assert set(samples) == {infos[0].id}


def test_read_all_empty_list() -> None:
    assert StatsApiReader(RecordedClient({})).read_all([]) == {}


class BlockingClient:
    """Block on chosen containers and record the most requests in flight."""

    def __init__(self, blocked: set[str], delay: float = 0.0) -> None:
        self.blocked = blocked
        self.delay = delay
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def stats(self, container_id: str) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if container_id in self.blocked:
                self.release.wait(30)
            else:
                self.release.wait(self.delay)
            return reply("c1_current")
        finally:
            with self.lock:
                self.in_flight -= 1


def test_read_all_caps_concurrency_at_ten() -> None:
    infos = [replace(INFO, id=f"{n:064x}") for n in range(25)]
    client = BlockingClient(blocked=set(), delay=0.05)
    samples = StatsApiReader(client).read_all(infos)
    assert len(samples) == 25
    assert client.max_in_flight == 10


def test_timed_out_container_gets_error() -> None:
    infos = [replace(INFO, id=f"{n:064x}") for n in range(3)]
    client = BlockingClient(blocked={infos[1].id})
    try:
        samples = StatsApiReader(client, timeout=0.5).read_all(infos)
    finally:
        client.release.set()
    assert set(samples) == {info.id for info in infos}
    assert samples[infos[0].id].errors == {}
    assert samples[infos[2].id].memory_usage_bytes == 2387968
    timed_out = samples[infos[1].id]
    assert "timed out after 0.5 s" in timed_out.errors["stats_timeout"]
    assert timed_out.cpu_usage_seconds is None
    assert timed_out.memory_usage_bytes is None


def test_queued_behind_hung_requests_time_out() -> None:
    infos = [replace(INFO, id=f"{n:064x}") for n in range(12)]
    # Ten hung requests fill the pool; the last two never start.
    client = BlockingClient(blocked={info.id for info in infos[:10]})
    try:
        samples = StatsApiReader(client, timeout=0.3, max_concurrent=10).read_all(infos)
    finally:
        client.release.set()
    assert len(samples) == 12
    assert all("stats_timeout" in s.errors for s in samples.values())


@pytest.mark.parametrize(("timeout", "workers"), [(0, 10), (-1, 10), (5, 0)])
def test_rejects_invalid_settings(timeout: float, workers: int) -> None:
    with pytest.raises(ValueError, match="invalid stats reader settings"):
        StatsApiReader(RecordedClient({}), timeout=timeout, max_concurrent=workers)
