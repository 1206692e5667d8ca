"""CgroupReader and StatsApiReader against containers on the real engine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import docker
import pytest

from exporter.cgroup import CgroupReader
from exporter.cpu import CpuUtilizationTracker
from exporter.host import HostFacts
from exporter.model import ContainerGoneError, ContainerSample
from exporter.stats_api import StatsApiReader
from tests.conftest import RunContainer
from tests.exporter.fixtures.engine import EngineStatsClient, info_from_engine
from tests.services import require, wait_until

pytestmark = pytest.mark.docker

MIB = 1024**2
LIMITS = {"nano_cpus": 500_000_000, "mem_limit": "64m", "pids_limit": 50}


@pytest.fixture
def reader() -> CgroupReader:
    reader = CgroupReader()
    reason = reader.probe()
    require(reason is None, f"cgroup files are not usable here: {reason}")
    return reader


@pytest.fixture
def stats_reader(docker_client: docker.DockerClient) -> StatsApiReader:
    host = HostFacts().limits()
    return StatsApiReader(
        EngineStatsClient(docker_client),
        host_memory_bytes=host.memory_total_bytes,
        host_pids_limit=host.pids_limit,
    )


def test_limits_read_from_cgroup(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> None:
    container = run_container(**LIMITS)
    sample = reader.read(info_from_engine(docker_client, container.id))
    assert sample.errors == {}
    assert sample.cpu_limit_cores == 0.5
    assert sample.memory_limit_bytes == 64 * MIB
    assert sample.pids_limit == 50
    assert sample.pids == 1


def test_unlimited_container_gets_host_limits(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> None:
    container = run_container()
    sample = reader.read(info_from_engine(docker_client, container.id))
    host = HostFacts().limits()
    assert sample.errors == {}
    assert sample.cpu_limit_cores == float(host.online_cpus)
    assert sample.memory_limit_bytes == host.memory_total_bytes
    assert sample.pids_limit == host.pids_limit


def test_cpuset_bounds_cpu_limit(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> None:
    container = run_container(cpuset_cpus="0")
    sample = reader.read(info_from_engine(docker_client, container.id))
    assert sample.cpu_limit_cores == 1.0


def test_shm_write_raises_working_set(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> None:
    container = run_container(**LIMITS)
    info = info_from_engine(docker_client, container.id)
    before = reader.read(info).memory_working_set_bytes
    result = container.exec_run("dd if=/dev/zero of=/dev/shm/f bs=1M count=20")
    assert result.exit_code == 0, result.output
    after = reader.read(info).memory_working_set_bytes
    assert before is not None
    assert after is not None
    assert after - before == pytest.approx(20 * MIB, abs=2 * MIB)


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """Return utime plus stime of one process from /proc, an independent count."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of the line, counted from the pid, after "(comm)".
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def host_idle_seconds() -> float:
    """Return the idle time summed over all CPUs, from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[4]) / TICKS_PER_SECOND


def measure_spinner(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> tuple[float, float, float]:
    """Run a spinner under --cpus 0.5 for 2 s; return ratio, process and idle cores."""
    container = run_container("while :; do :; done", **LIMITS)
    info = info_from_engine(docker_client, container.id)
    tracker = CpuUtilizationTracker()
    # Let the CFS quota settle into its steady pattern before the baseline.
    time.sleep(0.5)
    assert tracker.update(info.id, reader.read(info)) is None
    process_before = process_cpu_seconds(info.pid)
    idle_before = host_idle_seconds()
    started = time.monotonic()
    time.sleep(2)
    result = tracker.update(info.id, reader.read(info))
    elapsed = time.monotonic() - started
    process_cores = (process_cpu_seconds(info.pid) - process_before) / elapsed
    idle_cores = (host_idle_seconds() - idle_before) / elapsed
    assert result is not None
    assert result.ratio is not None
    return result.ratio, process_cores, idle_cores


def test_spinner_matches_process_cpu_time(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> None:
    ratio, process_cores, _ = measure_spinner(docker_client, run_container, reader)
    # The process's own tick count has 10 ms steps, about 1 % of the interval.
    assert ratio * 0.5 == pytest.approx(process_cores, rel=0.1, abs=0.02)
    assert ratio <= 1.1


def test_spinner_reaches_its_limit(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> None:
    ratio, _, idle_cores = measure_spinner(docker_client, run_container, reader)
    # Other load on a shared engine can starve the spinner below its quota;
    # then the ratio is right but cannot show the limit.
    require(
        idle_cores >= 0.5,
        f"the host had {idle_cores:.2f} idle CPUs while the spinner ran, so it "
        "could not reach its 0.5-CPU limit; rerun on a quiet host",
    )
    assert ratio == pytest.approx(1.0, rel=0.1)


def test_stopped_container_is_gone(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> None:
    container = run_container()
    info = info_from_engine(docker_client, container.id)
    reader.read(info)
    container.kill()
    container.wait()
    with pytest.raises(ContainerGoneError):
        reader.read(info)


def test_removed_container_left_out(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
) -> None:
    running = run_container()
    removed = run_container()
    infos = [info_from_engine(docker_client, c.id) for c in (running, removed)]
    removed.remove(force=True)
    samples = reader.read_all(infos)
    assert set(samples) == {running.id}


def _assert_same_memory(cgroup: ContainerSample, api: ContainerSample) -> None:
    assert cgroup.memory_limit_bytes == api.memory_limit_bytes
    assert cgroup.memory_usage_bytes is not None
    assert api.memory_usage_bytes is not None
    assert api.memory_usage_bytes == pytest.approx(cgroup.memory_usage_bytes, abs=MIB)
    assert cgroup.memory_working_set_bytes is not None
    assert api.memory_working_set_bytes is not None
    assert api.memory_working_set_bytes == pytest.approx(
        cgroup.memory_working_set_bytes, abs=MIB
    )


@pytest.mark.parametrize("limited", [True, False], ids=["limited", "unlimited"])
def test_stats_api_matches_cgroup(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
    stats_reader: StatsApiReader,
    limited: bool,
) -> None:
    container = run_container(**(LIMITS if limited else {}))
    info = info_from_engine(docker_client, container.id)
    result = container.exec_run("dd if=/dev/zero of=/dev/shm/f bs=1M count=20")
    assert result.exit_code == 0, result.output
    cgroup = reader.read(info)
    api = stats_reader.read(info)
    assert api.errors == {}
    assert api.cpu_limit_cores == cgroup.cpu_limit_cores
    assert api.pids_limit == cgroup.pids_limit
    assert api.pids == cgroup.pids
    _assert_same_memory(cgroup, api)


def test_stats_api_utilization_matches_cgroup(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    reader: CgroupReader,
    stats_reader: StatsApiReader,
) -> None:
    container = run_container("while :; do :; done", **LIMITS)
    info = info_from_engine(docker_client, container.id)
    cgroup_tracker = CpuUtilizationTracker()
    api_tracker = CpuUtilizationTracker()
    time.sleep(0.5)
    # Both sources measure the same interval, so other load on the host
    # moves both values alike.
    assert api_tracker.update(info.id, stats_reader.read(info)) is None
    assert cgroup_tracker.update(info.id, reader.read(info)) is None
    time.sleep(2)
    api = api_tracker.update(info.id, stats_reader.read(info))
    cgroup = cgroup_tracker.update(info.id, reader.read(info))
    assert api is not None
    assert cgroup is not None
    assert api.ratio is not None
    assert api.ratio == pytest.approx(cgroup.ratio, rel=0.1)
    assert api.ratio <= 1.1


def test_stats_api_read_all_skips_gone(
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    stats_reader: StatsApiReader,
) -> None:
    running = run_container()
    stopped = run_container()
    removed = run_container()
    infos = [info_from_engine(docker_client, c.id) for c in (running, stopped, removed)]
    stopped.kill()
    wait_until(lambda: stopped.wait(timeout=10), message="container to stop")
    removed.remove(force=True)
    samples = stats_reader.read_all(infos)
    assert set(samples) == {running.id}
