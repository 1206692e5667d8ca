"""The exporter as a process: engine faults, signals, flags and variables."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.conftest import RunContainer
from tests.exporter.fakes import series_of, value_of
from tests.exporter.helpers import SocketProxy, scrape, start_exporter
from tests.services import ServerFactory, free_port, http_get, wait_until


def test_unserved_socket_gives_docker_down(
    servers: ServerFactory, tmp_path: Path
) -> None:
    socket_url = f"unix://{tmp_path / 'nothing.sock'}"
    exporter = start_exporter(servers, f"--docker.host={socket_url}")
    values = wait_until(
        lambda: (
            (v := scrape(exporter))
            and (value_of(v, "warden_exporter_errors_total", kind="docker_api") or 0)
            >= 3
            and v
        ),
        timeout=30,
        message="three failed reconnects",
    )
    assert value_of(values, "warden_exporter_docker_up") == 0
    assert value_of(values, "warden_exporter_containers") == 0
    assert http_get(exporter.url + "/healthz")[0] == 200
    assert exporter.log().count("Docker engine unavailable") == 1


@pytest.mark.docker
def test_real_engine_gives_docker_up(
    servers: ServerFactory, docker_client: docker.DockerClient
) -> None:
    exporter = start_exporter(servers)
    values = wait_until(
        lambda: value_of(scrape(exporter), "warden_exporter_docker_up") == 1,
        timeout=10,
    )
    assert values


@pytest.mark.docker
def test_events_survive_engine_loss(
    servers: ServerFactory,
    docker_client: docker.DockerClient,
    run_container: RunContainer,
    tmp_path: Path,
) -> None:
    proxy = SocketProxy(tmp_path / "engine.sock")
    proxy.start()
    exporter = start_exporter(servers, f"--docker.host={proxy.url}")
    wait_until(lambda: value_of(scrape(exporter), "warden_exporter_docker_up") == 1)

    proxy.stop()
    wait_until(
        lambda: value_of(scrape(exporter), "warden_exporter_docker_up") == 0,
        message="docker_up to drop to 0",
    )
    proxy.start()
    wait_until(
        lambda: value_of(scrape(exporter), "warden_exporter_docker_up") == 1,
        timeout=60,
        message="docker_up to return to 1",
    )
    container = run_container("sleep 3600")
    wait_until(
        lambda: series_of(scrape(exporter), "docker_container_info", id=container.id),
        timeout=15,
        message="a container started after the outage to appear",
    )
    proxy.stop()
    assert exporter.log().count("Docker engine unavailable") == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(
    servers: ServerFactory, tmp_path: Path, sig: signal.Signals
) -> None:
    exporter = start_exporter(
        servers, f"--docker.host=unix://{tmp_path / 'nothing.sock'}"
    )
    assert exporter.stop(sig) == 0
    assert "exporter stopped" in exporter.log()


def run_cli(
    *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_invalid_flag_exits_2_naming_flag() -> None:
    result = run_cli("--source=files")
    assert result.returncode == 2
    assert "argument --source" in result.stderr
    assert "auto, cgroup, api" in result.stderr


def test_invalid_variable_exits_2_naming_it() -> None:
    env = {"PATH": "/usr/bin:/bin", "WARDEN_EXPORTER_LOG_FORMAT": "xml"}
    result = run_cli(env=env)
    assert result.returncode == 2
    assert "WARDEN_EXPORTER_LOG_FORMAT (for --log.format)" in result.stderr


def test_help_exits_0_with_defaults() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "(default: ':9648')" in result.stdout


def test_busy_port_exits_1(servers: ServerFactory, tmp_path: Path) -> None:
    nothing = f"--docker.host=unix://{tmp_path / 'nothing.sock'}"
    exporter = start_exporter(servers, nothing)
    result = run_cli(f"--web.listen-address=127.0.0.1:{exporter.port}", nothing)
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1:" in result.stderr


def test_environment_sets_path_and_format(
    servers: ServerFactory, tmp_path: Path
) -> None:
    env = {
        "WARDEN_EXPORTER_WEB_TELEMETRY_PATH": "/probe",
        "WARDEN_EXPORTER_LOG_FORMAT": "json",
        "WARDEN_EXPORTER_DOCKER_HOST": f"unix://{tmp_path / 'nothing.sock'}",
    }
    port = free_port()
    exporter = servers.start(
        "exporter",
        [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}"],
        port,
        ready_path="/healthz",
        env=env,
    )
    assert value_of(scrape(exporter, "/probe"), "warden_exporter_docker_up") == 0
    assert http_get(exporter.url + "/metrics")[0] == 404
    exporter.stop()
    lines = [json.loads(line) for line in exporter.log().splitlines() if line]
    assert any(line["msg"].startswith("exporter listening on") for line in lines)
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
