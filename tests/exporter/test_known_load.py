"""Known loads in real containers, read through a real exporter's /metrics.

Every check filters by the IDs of this test's own containers, because other
containers may share the engine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from tests.conftest import RUN_ID, RunContainer
from tests.exporter.fakes import series_of, value_of
from tests.exporter.helpers import scrape, start_exporter
from tests.services import Server, ServerFactory, require, wait_until

pytestmark = pytest.mark.docker

MIB = 1024 * 1024


@pytest.fixture
def exporter(servers: ServerFactory, docker_client: docker.DockerClient) -> Server:
    return start_exporter(
        servers, "--source=cgroup", "--label-allowlist=com.example.team"
    )


@pytest.fixture
def scrape_driven_exporter(
    servers: ServerFactory, docker_client: docker.DockerClient
) -> Server:
    return start_exporter(servers, "--source=cgroup", "--cpu.sample-interval=0")


def wait_for_series(
    exporter: Server, metric: str, container_id: str, timeout: float = 15
) -> float:
    """Scrape until ``metric`` has a series for the container; return its value."""

    def value() -> float | None:
        return value_of(scrape(exporter), metric, id=container_id)

    found = wait_until(
        lambda: (v := value()) is not None and (v,),
        timeout=timeout,
        message=f"{metric} of {container_id}",
    )
    return float(found[0])


def process_cpu_seconds(pid: int) -> float:
    """Return user plus system CPU time of a host process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_spinner(run_container: RunContainer) -> Container:
    """Start a shell loop limited to half a core."""
    # Top CPU shares keep other containers on the shared engine from taking
    # the spinner's half core when the host is busy.
    return run_container(
        "while :; do :; done", nano_cpus=500_000_000, cpu_shares=262144
    )


def require_full_half_core(process_cores: float) -> None:
    # Other load on a shared host can starve the spinner below its quota,
    # and then the ratio is right but cannot show the limit.
    require(
        process_cores >= 0.45,
        f"the spinner got {process_cores:.2f} of its 0.5 cores because the "
        f"host was busy (load average {os.getloadavg()[0]:.1f}); rerun on a "
        "quiet host",
    )


def test_new_spinner_valued_on_first_scrape(
    exporter: Server, run_container: RunContainer
) -> None:
    # Discovery sees the start event within milliseconds and the sampler
    # reads the counter every second. No scrape happens before this one.
    container = start_spinner(run_container)
    time.sleep(2.5)
    values = scrape(exporter)
    info = series_of(values, "docker_container_info", id=container.id)
    ratio = value_of(values, "docker_container_cpu_utilization_ratio", id=container.id)
    assert info, f"container {container.id} is not listed yet"
    assert ratio is not None
    assert ratio > 0


def measure_spinner(
    exporter: Server, container: Container, *, baseline_scrape: bool, window: float
) -> tuple[float | None, float]:
    """Return the spinner's utilization ratio and its cores measured in /proc.

    The shell's own CPU time in /proc is an independent measure of the
    load, taken over ``window`` seconds that end at the measuring scrape.
    """
    container.reload()
    pid = int(container.attrs["State"]["Pid"])
    if baseline_scrape:
        scrape(exporter)
    process_before = process_cpu_seconds(pid)
    started = time.monotonic()
    time.sleep(window)
    values = scrape(exporter)
    process_cores = (process_cpu_seconds(pid) - process_before) / (
        time.monotonic() - started
    )
    ratio = value_of(values, "docker_container_cpu_utilization_ratio", id=container.id)
    return ratio, process_cores


def test_sampled_spinner_matches_proc(
    exporter: Server, run_container: RunContainer
) -> None:
    container = start_spinner(run_container)
    limit = wait_for_series(exporter, "docker_container_cpu_limit_cores", container.id)

    # The sampler's latest interval, one second before the scrape, lies
    # inside the window, and the spinner's quota keeps its rate steady.
    time.sleep(1)
    ratio, process_cores = measure_spinner(
        exporter, container, baseline_scrape=False, window=3
    )

    assert limit == 0.5
    assert ratio is not None
    # /proc counts in 10 ms ticks, about 0.3 % of the window.
    assert ratio * limit == pytest.approx(process_cores, rel=0.1, abs=0.02)
    require_full_half_core(process_cores)
    assert ratio == pytest.approx(1.0, rel=0.10)


def test_spinner_uses_its_half_core(
    scrape_driven_exporter: Server, run_container: RunContainer
) -> None:
    container = start_spinner(run_container)
    limit = wait_for_series(
        scrape_driven_exporter, "docker_container_cpu_limit_cores", container.id
    )

    # Without the sampler, one scrape sets the CPU baseline and the next,
    # five seconds later, measures the spinner over that interval.
    time.sleep(2)
    ratio, process_cores = measure_spinner(
        scrape_driven_exporter, container, baseline_scrape=True, window=5
    )

    assert limit == 0.5
    assert ratio is not None
    # /proc counts in 10 ms ticks, about 0.2 % of the interval.
    assert ratio * limit == pytest.approx(process_cores, rel=0.1, abs=0.02)
    require_full_half_core(process_cores)
    assert ratio == pytest.approx(1.0, rel=0.10)


def test_shm_write_raises_working_set(
    exporter: Server, run_container: RunContainer
) -> None:
    container = run_container("sleep 3600", mem_limit="256m")
    metric = "docker_container_memory_working_set_bytes"
    before = wait_for_series(exporter, metric, container.id)
    result = container.exec_run("dd if=/dev/zero of=/dev/shm/f bs=1M count=32")
    assert result.exit_code == 0, result.output
    values = scrape(exporter)
    after = value_of(values, metric, id=container.id)
    limit = value_of(values, "docker_container_memory_limit_bytes", id=container.id)
    assert after is not None
    assert after - before == pytest.approx(32 * MIB, abs=2 * MIB)
    assert limit == 256 * MIB


def test_background_sleeps_counted_exactly(
    exporter: Server, run_container: RunContainer
) -> None:
    # `wait` is a shell builtin, so sh stays and forks exactly three sleeps.
    container = run_container(
        "sleep 3600 & sleep 3600 & sleep 3600 & wait", pids_limit=20
    )
    wait_until(
        lambda: (
            value_of(scrape(exporter), "docker_container_pids", id=container.id) == 4
        ),
        timeout=15,
        message="sh plus three sleeps",
    )
    values = scrape(exporter)
    assert value_of(values, "docker_container_pids", id=container.id) == 4
    assert value_of(values, "docker_container_pids_limit", id=container.id) == 20


def test_recreated_name_replaces_series(
    exporter: Server, run_container: RunContainer
) -> None:
    name = f"warden-recreate-{RUN_ID}"
    first = run_container("sleep 3600", name=name)
    wait_for_series(exporter, "docker_container_pids", first.id)
    first.remove(force=True)
    second = run_container("sleep 3600", name=name)
    wait_for_series(exporter, "docker_container_pids", second.id)

    poll_two = scrape(exporter)
    ids = {
        dict(labels)["id"]
        for labels in series_of(poll_two, "docker_container_pids", name=name)
    }
    assert ids == {second.id}

    second.remove(force=True)
    wait_until(
        lambda: not series_of(scrape(exporter), "docker_container_info", name=name),
        timeout=15,
        message=f"series of {name} to disappear",
    )
    poll_three = scrape(exporter)
    assert series_of(poll_three, "docker_container_pids", name=name) == {}
    assert series_of(poll_three, "docker_container_memory_usage_bytes", name=name) == {}


def test_stopping_container_never_reads_zero(
    exporter: Server, run_container: RunContainer
) -> None:
    container = run_container("sleep 3600")
    wait_for_series(exporter, "docker_container_memory_usage_bytes", container.id)
    container.kill()
    seen: list[tuple[float | None, float | None]] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        values = scrape(exporter)
        usage = value_of(values, "docker_container_memory_usage_bytes", id=container.id)
        cpu = value_of(
            values, "docker_container_cpu_usage_seconds_total", id=container.id
        )
        if usage is None and cpu is None:
            break
        seen.append((usage, cpu))
    else:
        pytest.fail("series of the killed container did not disappear in 15 s")
    assert all(usage != 0 for usage, _ in seen), seen
    assert all(cpu != 0 for _, cpu in seen), seen


def test_labels_reach_info_metric(
    exporter: Server, run_container: RunContainer
) -> None:
    labels = {
        "com.docker.compose.project": "shop",
        "com.docker.compose.service": "api",
        "warden.protect": "true",
        "com.example.team": "payments",
        "com.example.secret": "not-exported",
    }
    container = run_container("sleep 3600", labels=labels)
    wait_for_series(exporter, "docker_container_info", container.id)
    [info] = series_of(scrape(exporter), "docker_container_info", id=container.id)
    found = dict(info)
    assert found["name"] == container.name
    assert found["compose_project"] == "shop"
    assert found["compose_service"] == "api"
    assert found["protected"] == "true"
    assert found["label_com_example_team"] == "payments"
    assert found["image"] == "warden-busybox:latest"
    assert found["image_id"].startswith("sha256:")
    assert "not-exported" not in found.values()
