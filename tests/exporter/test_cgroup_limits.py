"""The cache of limit files between reads of one container."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from exporter.cgroup import CgroupReader
from exporter.cgroup_limits import LimitCache
from exporter.model import ContainerSample
from tests.exporter.fixtures.cgroup_trees import HOST_PIDS_LIMIT, FakeHost

ID_A = "a" * 64


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=[1, 2])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path, version=request.param)


def reader_with_clock(host: FakeHost, clock: FakeClock) -> CgroupReader:
    # The clock of the cache alone is faked; file reads stay real.
    return CgroupReader(
        cgroup_root=host.cgroup_root,
        proc_root=host.proc_root,
        limits=LimitCache(ttl_seconds=30.0, clock=clock),
    )


def test_limit_reused_within_ttl(host: FakeHost) -> None:
    clock = FakeClock()
    info = host.add_container(ID_A, pid=1234, files={"pids.max": "50\n"})
    reader = reader_with_clock(host, clock)
    assert reader.read(info).pids_limit == 50
    host.write_file(ID_A, "pids.max", "60\n")
    clock.now += 29
    assert reader.read(info).pids_limit == 50


def test_limit_read_again_after_ttl(host: FakeHost) -> None:
    clock = FakeClock()
    info = host.add_container(ID_A, pid=1234, files={"pids.max": "50\n"})
    reader = reader_with_clock(host, clock)
    reader.read(info)
    host.write_file(ID_A, "pids.max", "60\n")
    clock.now += 30
    assert reader.read(info).pids_limit == 60


def test_docker_update_reads_limit_again(host: FakeHost) -> None:
    # Discovery inspects the container again on an update event, so the
    # reader sees new HostConfig limits before the TTL runs out.
    clock = FakeClock()
    info = host.add_container(ID_A, pid=1234, files={"pids.max": "50\n"})
    reader = reader_with_clock(host, clock)
    reader.read(info)
    host.write_file(ID_A, "pids.max", "60\n")
    updated = dataclasses.replace(info, pids_limit=60)
    assert reader.read(updated).pids_limit == 60


def test_restart_reads_limit_again(host: FakeHost) -> None:
    clock = FakeClock()
    info = host.add_container(ID_A, pid=1234, files={"pids.max": "50\n"})
    reader = reader_with_clock(host, clock)
    reader.read(info)
    host.write_file(ID_A, "pids.max", "max\n")
    host.write_proc_cgroup(5678, host.cgroup_path(ID_A))
    restarted = dataclasses.replace(info, pid=5678)
    assert reader.read(restarted).pids_limit == HOST_PIDS_LIMIT


def test_faulty_limit_not_cached(host: FakeHost) -> None:
    clock = FakeClock()
    info = host.add_container(ID_A, pid=1234, files={"pids.max": "fifty\n"})
    reader = reader_with_clock(host, clock)
    for _ in range(2):
        sample = reader.read(info)
        assert sample.pids_limit is None
        assert "pids.max" in sample.errors["cgroup_parse"]
    host.write_file(ID_A, "pids.max", "50\n")
    fixed = reader.read(info)
    assert fixed.pids_limit == 50
    assert fixed.errors == {}


def test_cached_limit_keeps_usage_fresh(host: FakeHost) -> None:
    clock = FakeClock()
    info = host.add_container(ID_A, pid=1234, files={"pids.current": "1\n"})
    reader = reader_with_clock(host, clock)
    reader.read(info)
    host.write_file(ID_A, "pids.current", "7\n")
    assert reader.read(info).pids == 7


def test_forget_drops_cached_limit(host: FakeHost) -> None:
    clock = FakeClock()
    info = host.add_container(ID_A, pid=1234, files={"pids.max": "50\n"})
    reader = reader_with_clock(host, clock)
    reader.read(info)
    host.write_file(ID_A, "pids.max", "60\n")
    reader.forget(ID_A)
    assert reader.read(info).pids_limit == 60


def test_limit_fault_joins_sample_errors(host: FakeHost) -> None:
    info = host.add_container(
        ID_A, pid=1234, files={"pids.max": "fifty\n", "pids.current": "x\n"}
    )
    sample = CgroupReader(host.cgroup_root, host.proc_root).read(info)
    message = sample.errors["cgroup_parse"]
    assert "pids.current" in message
    assert "pids.max" in message


def test_read_cpu_reads_only_counter(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    sample = CgroupReader(host.cgroup_root, host.proc_root).read_cpu(info)
    assert sample.cpu_usage_seconds is not None
    assert sample.cpu_clock_seconds is not None
    assert sample == ContainerSample(
        cpu_usage_seconds=sample.cpu_usage_seconds,
        cpu_clock_seconds=sample.cpu_clock_seconds,
    )
