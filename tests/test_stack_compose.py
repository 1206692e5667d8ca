"""The Compose deployment files: valid for docker-compose and consistent.

No image can be pulled on the test machine, so the stack is not started
here. These checks are the ones a host with a registry would fail first.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from deploy.compose import render_compose_configs
from tests.services import require_binary

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SERVICES = ("exporter", "enforcer", "prometheus", "alertmanager", "grafana")


def resolved_compose(tmp_path: Path) -> dict[str, Any]:
    """Return the Compose file as docker-compose resolves it."""
    binary = require_binary("docker-compose")
    folder = tmp_path / "deploy"
    folder.mkdir()
    shutil.copy(DEPLOY / "docker-compose.yml", folder)
    result = subprocess.run(
        [binary, "--file", str(folder / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "DOCKER_GID": "998"},
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = yaml.safe_load(result.stdout)
    return document


def test_compose_file_is_valid(tmp_path: Path) -> None:
    services = resolved_compose(tmp_path)["services"]
    assert sorted(services) == sorted(SERVICES)


def test_compose_services_are_protected(tmp_path: Path) -> None:
    services = resolved_compose(tmp_path)["services"]
    for name in SERVICES:
        assert services[name]["labels"]["warden.protect"] == "true", name


def test_compose_ports_bind_loopback(tmp_path: Path) -> None:
    services = resolved_compose(tmp_path)["services"]
    for name in SERVICES:
        for port in services[name].get("ports", []):
            # docker-compose 1.29 prints short syntax: host_ip:published:target
            assert port.startswith("127.0.0.1:"), (name, port)


def test_compose_alertmanager_publishes_no_port(tmp_path: Path) -> None:
    services = resolved_compose(tmp_path)["services"]
    assert "ports" not in services["alertmanager"]


def test_compose_exporter_mounts_read_only(tmp_path: Path) -> None:
    exporter = resolved_compose(tmp_path)["services"]["exporter"]
    # docker-compose 1.29 prints short syntax: source:target:mode
    modes = {
        volume.split(":")[1]: volume.split(":")[2:] for volume in exporter["volumes"]
    }
    for target in ("/host/sys/fs/cgroup", "/host/proc", "/var/run/docker.sock"):
        assert modes[target] == ["ro"], target
    assert "--cgroup.root=/host/sys/fs/cgroup" in exporter["command"]
    assert "--proc.root=/host/proc" in exporter["command"]
    assert exporter["pid"] == "host"


def test_compose_token_is_a_secret(tmp_path: Path) -> None:
    document = resolved_compose(tmp_path)
    services = document["services"]
    enforcer_command = services["enforcer"]["command"]
    assert "warden_webhook_token" in document["secrets"]
    assert services["enforcer"]["secrets"][0]["source"] == "warden_webhook_token"
    assert services["alertmanager"]["secrets"][0]["source"] == "warden_webhook_token"
    assert "--webhook.token-file=/run/secrets/warden_webhook_token" in enforcer_command


def test_cgroup_override_sets_host_namespace() -> None:
    override = yaml.safe_load((DEPLOY / "docker-compose.cgroup-host.yml").read_text())
    assert override["services"]["exporter"]["cgroup"] == "host"


def test_committed_compose_configs_are_current() -> None:
    for name, text in render_compose_configs().items():
        committed = (DEPLOY / name).read_text()
        assert committed == text, (
            f"deploy/{name} is stale; run python -m deploy.compose"
        )


def test_compose_prometheus_config_is_valid() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(DEPLOY / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_alertmanager_config_is_valid() -> None:
    amtool = require_binary("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(DEPLOY / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_webhook_reaches_enforcer_service() -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    webhook = config["receivers"][1]["webhook_configs"][0]
    assert webhook["url"] == "http://enforcer:9649/webhook"
    assert (
        webhook["http_config"]["authorization"]["credentials_file"]
        == "/run/secrets/warden_webhook_token"
    )
