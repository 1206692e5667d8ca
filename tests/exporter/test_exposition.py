"""Exact exposition output of a fixed fixture."""
# ruff: noqa: E501  (the expected output keeps its real line lengths)

from __future__ import annotations

import itertools

from prometheus_client import CollectorRegistry, generate_latest

from exporter.collector import ContainerCollector
from exporter.cpu import CpuUtilizationTracker
from exporter.model import ContainerSample
from tests.exporter.fakes import HEX_A, FakeDiscovery, FakeSource, make_info

EXPECTED = """\
# HELP docker_container_cpu_usage_seconds_total CPU time the container used, user plus system, in seconds.
# TYPE docker_container_cpu_usage_seconds_total counter
docker_container_cpu_usage_seconds_total{id="ID",name="web"} 2.5
# HELP docker_container_cpu_limit_cores Effective CPU limit in cores: quota over period, else the cpuset size, else the host's online CPUs.
# TYPE docker_container_cpu_limit_cores gauge
docker_container_cpu_limit_cores{id="ID",name="web"} 0.5
# HELP docker_container_cpu_utilization_ratio CPU used between the two latest reads, divided by the elapsed time and the CPU limit.
# TYPE docker_container_cpu_utilization_ratio gauge
docker_container_cpu_utilization_ratio{id="ID",name="web"} 1.0
# HELP docker_container_cpu_throttled_seconds_total Time the container was throttled by its CFS quota, in seconds.
# TYPE docker_container_cpu_throttled_seconds_total counter
docker_container_cpu_throttled_seconds_total{id="ID",name="web"} 0.125
# HELP docker_container_memory_usage_bytes Memory charged to the container's cgroup, page cache included.
# TYPE docker_container_memory_usage_bytes gauge
docker_container_memory_usage_bytes{id="ID",name="web"} 1.048576e+07
# HELP docker_container_memory_working_set_bytes Memory usage minus inactive file cache, floored at 0, in bytes.
# TYPE docker_container_memory_working_set_bytes gauge
docker_container_memory_working_set_bytes{id="ID",name="web"} 8.388608e+06
# HELP docker_container_memory_limit_bytes Effective memory limit: the cgroup limit, or the host's memory when unlimited.
# TYPE docker_container_memory_limit_bytes gauge
docker_container_memory_limit_bytes{id="ID",name="web"} 2.68435456e+08
# HELP docker_container_memory_oom_kills_total Processes killed by the kernel OOM killer in the container's cgroup.
# TYPE docker_container_memory_oom_kills_total counter
docker_container_memory_oom_kills_total{id="ID",name="web"} 1.0
# HELP docker_container_pids Tasks in the container's cgroup, processes and threads.
# TYPE docker_container_pids gauge
docker_container_pids{id="ID",name="web"} 4.0
# HELP docker_container_pids_limit Effective limit of tasks: pids.max, or the host's limit when unlimited.
# TYPE docker_container_pids_limit gauge
docker_container_pids_limit{id="ID",name="web"} 64.0
# HELP docker_container_start_time_seconds Unix time the container last started, in seconds.
# TYPE docker_container_start_time_seconds gauge
docker_container_start_time_seconds{id="ID",name="web"} 1.7e+09
# HELP docker_container_info Metadata of a running container; the value is always 1.
# TYPE docker_container_info gauge
docker_container_info{compose_project="shop",compose_service="api",id="ID",image="busybox:latest",image_id="sha256:0000000000000000000000000000000000000000000000000000000000000000",label_com_example_team="payments",name="web",protected="false"} 1.0
# HELP warden_exporter_collect_duration_seconds Time the last collection of container metrics took, in seconds.
# TYPE warden_exporter_collect_duration_seconds gauge
warden_exporter_collect_duration_seconds 0.25
# HELP warden_exporter_containers Number of containers that the last collection published.
# TYPE warden_exporter_containers gauge
warden_exporter_containers 1.0
# HELP warden_exporter_docker_up Whether the last call to the Docker API succeeded (1) or not (0).
# TYPE warden_exporter_docker_up gauge
warden_exporter_docker_up 1.0
# HELP warden_exporter_errors_total Errors while reading containers or calling the Docker API, by kind.
# TYPE warden_exporter_errors_total counter
warden_exporter_errors_total{kind="docker_api"} 0.0
warden_exporter_errors_total{kind="read"} 0.0
""".replace("ID", HEX_A)


def fixed_sample(usage: float) -> ContainerSample:
    return ContainerSample(
        cpu_usage_seconds=usage,
        cpu_throttled_seconds=0.125,
        cpu_limit_cores=0.5,
        memory_usage_bytes=10_485_760,
        memory_working_set_bytes=8_388_608,
        memory_limit_bytes=268_435_456,
        memory_oom_kills=1,
        pids=4,
        pids_limit=64,
    )


def test_exposition_matches_fixture() -> None:
    labels = {
        "com.docker.compose.project": "shop",
        "com.docker.compose.service": "api",
        "com.example.team": "payments",
    }
    info = make_info(HEX_A, "web", labels=labels, started_at=1_700_000_000.0)
    source = FakeSource()
    ticks = itertools.count(step=0.25)
    collector = ContainerCollector(
        FakeDiscovery([info]),
        source,
        CpuUtilizationTracker(),
        label_allowlist=("com.example.team",),
        timer=lambda: next(ticks),
    )
    registry = CollectorRegistry()
    registry.register(collector)

    # The first scrape sets the CPU baseline. Between the two scrapes the
    # fake clock advances 1 s and usage grows 0.5 s, the whole 0.5 core limit.
    source.samples[HEX_A] = fixed_sample(usage=2.0)
    generate_latest(registry)
    source.samples[HEX_A] = fixed_sample(usage=2.5)
    output = generate_latest(registry).decode()

    assert output == EXPECTED
