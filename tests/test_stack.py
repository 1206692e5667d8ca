"""The local stack's machinery: generated configs, start, failure and stop.

These tests run real Prometheus, Alertmanager, promtool and amtool, but
stand-in children where the exporter and enforcer are not the subject.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from deploy.config import (
    StackConfigError,
    StackSettings,
    alertmanager_config,
    check_configs,
    prometheus_config,
    write_configs,
)
from deploy.options import settings_from_environment
from deploy.processes import (
    ProcessSpec,
    StackProcess,
    StackProcessError,
    check_port_free,
)
from deploy.stack import Stack, process_specs
from tests.services import (
    ServerFactory,
    free_port,
    http_get,
    require_binary,
    wait_until,
)

REPOSITORY = Path(__file__).resolve().parent.parent

METRICS = """\
# HELP docker_container_pids Tasks in the cgroup.
# TYPE docker_container_pids gauge
docker_container_pids{id="a",name="warden-e2e-sandbox"} 3
docker_container_pids{id="b",name="someone-else"} 7
# HELP warden_exporter_containers Containers seen in the last collection.
# TYPE warden_exporter_containers gauge
warden_exporter_containers 2
"""


def make_settings(tmp_path: Path, **overrides: object) -> StackSettings:
    rules = tmp_path / "empty.rules.yml"
    rules.write_text("groups: []\n")
    ports = {
        part: free_port()
        for part in ("exporter", "enforcer", "prometheus", "alertmanager")
    }
    values: dict[str, object] = {
        "state": tmp_path / "state",
        "ports": ports,
        "rule_files": [rules],
        **overrides,
    }
    return StackSettings(**values)  # type: ignore[arg-type]


def http_server_spec(name: str, port: int, folder: Path) -> ProcessSpec:
    """Describe a static file server standing in for a part of the stack."""
    argv = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(folder),
    ]
    return ProcessSpec(name=name, argv=argv, port=port, health_path="/")


def test_configs_pass_promtool_and_amtool(tmp_path: Path) -> None:
    require_binary("promtool")
    require_binary("amtool")
    settings = make_settings(tmp_path, name_regex="^warden-e2e-")
    write_configs(settings, fresh_token=True)
    check_configs(settings)


def test_prometheus_config_intervals_and_targets(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, scrape_interval_seconds=1.0)
    config = prometheus_config(settings)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert config["global"]["scrape_interval"] == "1s"
    assert config["global"]["evaluation_interval"] == "5s"
    assert jobs["warden-exporter"]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{settings.ports['exporter']}"
    ]
    assert jobs["warden-enforcer"]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{settings.ports['enforcer']}"
    ]
    assert "metric_relabel_configs" not in jobs["warden-exporter"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{settings.ports['alertmanager']}"
    ]


def test_alertmanager_routes_only_actions_to_enforcer(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    settings = make_settings(tmp_path)
    write_configs(settings, fresh_token=True)
    cases = {
        ("alertname=ContainerCPUSpike", "action=kill"): "warden-enforcer",
        ("alertname=ContainerCPUSpike", "action=stop"): "warden-enforcer",
        ("alertname=ContainerCPUSpike", "action=pause"): "warden-enforcer",
        ("alertname=ContainerCPUSpike", "action=reboot"): "discard",
        ("alertname=WardenExporterDown",): "discard",
    }
    for labels, receiver in cases.items():
        result = subprocess.run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={settings.alertmanager_config_path}",
                *labels,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.stdout.strip() == receiver, (labels, result.stderr)


def test_alertmanager_webhook_sends_each_alert_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    route = alertmanager_config(settings)["route"]["routes"][0]
    webhook = alertmanager_config(settings)["receivers"][1]["webhook_configs"][0]
    assert route["group_by"] == ["..."]
    assert route["group_wait"] == "0s"
    assert webhook["url"] == f"http://127.0.0.1:{settings.ports['enforcer']}/webhook"
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(
        settings.token_path
    )


def test_token_is_fresh_and_private(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write_configs(settings, fresh_token=True)
    first = settings.token_path.read_text()
    write_configs(settings, fresh_token=True)
    second = settings.token_path.read_text()
    mode = stat.S_IMODE(settings.token_path.stat().st_mode)
    assert mode == 0o600
    assert first != second
    assert len(second.strip()) >= 40


def test_config_rewrite_keeps_existing_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write_configs(settings, fresh_token=True)
    first = settings.token_path.read_text()
    write_configs(settings, fresh_token=False)
    assert settings.token_path.read_text() == first


def test_settings_read_ports_and_filter(tmp_path: Path) -> None:
    environ = {
        "WARDEN_STATE": str(tmp_path / "s"),
        "WARDEN_STACK_PROMETHEUS_PORT": "19090",
        "WARDEN_CONTAINER_NAME_REGEX": "^sandbox-",
    }
    settings = settings_from_environment(environ)
    assert settings.ports["prometheus"] == 19090
    assert settings.ports["exporter"] == 9648
    assert settings.name_regex == "^sandbox-"
    assert settings.state == (tmp_path / "s").resolve()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WARDEN_STACK_EXPORTER_PORT", "http", "WARDEN_STACK_EXPORTER_PORT='http'"),
        ("WARDEN_STACK_ENFORCER_PORT", "70000", "expected a number in 1-65535"),
        ("WARDEN_CONTAINER_NAME_REGEX", "([a-z", "not a valid regular expression"),
        ("WARDEN_CONTAINER_NAME_REGEX", "^(?!prod)", "Prometheus (RE2)"),
        ("WARDEN_CONTAINER_NAME_REGEX", "x\\Z", "use $ for the end"),
        ("WARDEN_CONTAINER_NAME_REGEX", "(?>a)", "an atomic group"),
        ("WARDEN_CONTAINER_NAME_REGEX", "a{2000}", "repeats {2000}, more than"),
        ("WARDEN_CONTAINER_NAME_REGEX", "a{3,1001}", "repeats {3,1001}, more"),
    ],
)
def test_invalid_settings_name_the_value(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(StackConfigError) as raised:
        settings_from_environment({variable: value})
    assert expected in str(raised.value)


def test_name_filter_keeps_matching_containers(
    tmp_path: Path, servers: ServerFactory
) -> None:
    exporter_folder = tmp_path / "exporter"
    exporter_folder.mkdir()
    (exporter_folder / "metrics").write_text(METRICS)
    exporter_port = free_port()
    servers.start(
        "exporter",
        http_server_spec("exporter", exporter_port, exporter_folder).argv,
        exporter_port,
        ready_path="/metrics",
    )
    settings = make_settings(
        tmp_path,
        ports={
            "exporter": exporter_port,
            "enforcer": free_port(),
            "prometheus": free_port(),
            "alertmanager": free_port(),
        },
        name_regex="^warden-e2e-",
        scrape_interval_seconds=0.5,
    )
    config = prometheus_config(settings)
    config.pop("rule_files")
    prometheus = servers.prometheus(config)

    def series(query: str) -> list[dict[str, str]]:
        url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode(
            {"query": query}
        )
        status, body = http_get(url)
        assert status == 200, body
        return [item["metric"] for item in json.loads(body)["data"]["result"]]

    wait_until(
        lambda: series("warden_exporter_containers"),
        timeout=20,
        message="the first scrape of the stand-in exporter",
    )
    names = {metric["name"] for metric in series("docker_container_pids")}
    labels = set().union(*(metric.keys() for metric in series("{job=~'warden.*'}")))
    assert names == {"warden-e2e-sandbox"}
    assert "__tmp_warden_guarded" not in labels


def test_port_taken_is_named(tmp_path: Path) -> None:
    rules = tmp_path / "empty.rules.yml"
    rules.write_text("groups: []\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "deploy.stack",
                "up",
                f"--state={tmp_path / 'state'}",
                f"--prometheus-port={port}",
                f"--exporter-port={free_port()}",
                f"--enforcer-port={free_port()}",
                f"--alertmanager-port={free_port()}",
                f"--rules={rules}",
            ],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "WARDEN_CONTAINER_NAME_REGEX": "^warden-e2e-"},
        )
    assert result.returncode == 1
    assert f"port {port} for prometheus" in result.stderr
    assert "WARDEN_STACK_PROMETHEUS_PORT" in result.stderr


def test_stack_stops_children_and_frees_ports(tmp_path: Path) -> None:
    require_binary("promtool")
    settings = make_settings(tmp_path)
    folder = tmp_path / "www"
    folder.mkdir()
    specs = [
        http_server_spec("first", settings.ports["exporter"], folder),
        http_server_spec("second", settings.ports["enforcer"], folder),
    ]
    with Stack(settings, specs=specs) as stack:
        stack.start(timeout=20)
        processes = list(stack.processes)
        for process in processes:
            assert process.healthy()
    for process in processes:
        assert process.exited() is not None
    for spec in specs:
        check_port_free(spec)


def test_child_exit_reports_log_tail(tmp_path: Path) -> None:
    require_binary("promtool")
    settings = make_settings(tmp_path)
    folder = tmp_path / "www"
    folder.mkdir()
    server = http_server_spec("flaky", settings.ports["exporter"], folder)
    script = f"{' '.join(server.argv)} & sleep 1; echo disk full >&2; kill $!; exit 3"
    spec = ProcessSpec(
        name="flaky",
        argv=[shutil.which("sh") or "/bin/sh", "-c", script],
        port=server.port,
        health_path="/",
    )
    with Stack(settings, specs=[spec]) as stack:
        stack.start(timeout=20)
        with pytest.raises(StackProcessError) as raised:
            stack.run_until(threading.Event(), poll_seconds=0.1)
    assert "flaky" in str(raised.value)
    assert "exited with status 3" in str(raised.value)
    assert "disk full" in str(raised.value)


def test_failed_start_stops_started_children(tmp_path: Path) -> None:
    require_binary("promtool")
    settings = make_settings(tmp_path)
    folder = tmp_path / "www"
    folder.mkdir()
    good = http_server_spec("good", settings.ports["exporter"], folder)
    broken = ProcessSpec(
        name="broken",
        argv=[sys.executable, "-c", "import sys; sys.exit('no config')"],
        port=settings.ports["enforcer"],
        health_path="/",
    )
    stack = Stack(settings, specs=[good, broken])
    with pytest.raises(StackProcessError) as raised:
        stack.start(timeout=20)
    assert "broken exited with status 1 during start" in str(raised.value)
    assert "no config" in str(raised.value)
    assert stack.processes == []
    check_port_free(good)


def test_generated_config_is_yaml_on_disk(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, name_regex="^warden-e2e-")
    write_configs(settings, fresh_token=True)
    on_disk = yaml.safe_load(settings.prometheus_config_path.read_text())
    assert on_disk == prometheus_config(settings)


def test_alertmanager_password_is_fresh_and_private(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    credentials = settings.credentials
    write_configs(settings, fresh_token=True)
    first = credentials.password_path.read_text()
    write_configs(settings, fresh_token=True)
    second = credentials.password_path.read_text()
    for path in (credentials.password_path, credentials.web_config_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert first != second
    assert len(second.strip()) >= 32


def test_web_config_holds_only_the_hash(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    write_configs(settings, fresh_token=True)
    password = settings.credentials.password_path.read_text().strip()
    web_config = yaml.safe_load(settings.credentials.web_config_path.read_text())
    hashed = web_config["basic_auth_users"]["warden"]
    assert password not in settings.credentials.web_config_path.read_text()
    assert bcrypt.checkpw(password.encode(), hashed.encode())


def test_prometheus_logs_in_to_alertmanager(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    config = prometheus_config(settings)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {
        "username": "warden",
        "password_file": str(settings.credentials.password_path),
    }
    assert config["alerting"]["alertmanagers"][0]["basic_auth"] == expected
    assert jobs["alertmanager"]["basic_auth"] == expected


def test_stack_passes_filter_and_no_lifecycle(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, name_regex="^sandbox-")
    argv = {spec.name: list(spec.argv) for spec in process_specs(settings)}
    assert "--guard.name-regex=^sandbox-" in argv["enforcer"]
    assert "--web.enable-lifecycle" not in argv["prometheus"]
    assert (
        f"--web.config.file={settings.credentials.web_config_path}"
        in argv["alertmanager"]
    )


def write_api_replies(tmp_path: Path, replies: dict[str, Any]) -> Path:
    """Write Prometheus API replies for a file server; return its folder."""
    folder = tmp_path / "prometheus-www"
    api = folder / "api" / "v1"
    api.mkdir(parents=True)
    for name, data in replies.items():
        (api / name).write_text(json.dumps({"status": "success", "data": data}))
    return folder


def fake_prometheus(tmp_path: Path, settings: StackSettings) -> ProcessSpec:
    """Describe a file server whose targets API lists no target at all."""
    folder = write_api_replies(tmp_path, {"targets": {"activeTargets": []}})
    return http_server_spec("prometheus", settings.ports["prometheus"], folder)


def test_alignment_without_scrape_named(tmp_path: Path) -> None:
    require_binary("promtool")
    settings = make_settings(
        tmp_path,
        scrape_interval_seconds=1.0,
        rule_files=[REPOSITORY / "alerts" / "rules.yml"],
    )
    stack = Stack(settings, specs=[fake_prometheus(tmp_path, settings)])
    with pytest.raises(StackProcessError) as raised:
        stack.start(timeout=20)
    assert "did not scrape job 'warden-exporter'" in str(raised.value)
    assert stack.processes == []


def test_alignment_off_keeps_rule_files(tmp_path: Path) -> None:
    require_binary("promtool")
    rules = [REPOSITORY / "alerts" / "rules.yml"]
    settings = make_settings(tmp_path, rule_files=rules, align_evaluations=False)
    with Stack(settings, specs=[fake_prometheus(tmp_path, settings)]) as stack:
        stack.start(timeout=20)
        assert list(stack.rule_files) == rules
    assert not (settings.state / "rules").exists()


def prometheus_reporting(tmp_path: Path, delay: float) -> Path:
    """Write API replies in which the group runs ``delay`` s after the scrape."""
    target = {
        "labels": {"job": "warden-exporter"},
        "lastScrape": "2026-12-04T17:00:00.100Z",
    }
    group = {
        "name": "warden-containers",
        "file": str(REPOSITORY / "alerts" / "rules.yml"),
        "interval": 5,
        "lastEvaluation": f"2026-12-04T17:00:{0.1 + delay:06.3f}Z",
    }
    replies = {
        "targets": {"activeTargets": [target]},
        "rules": {"groups": [group]},
    }
    return write_api_replies(tmp_path, replies)


@pytest.mark.parametrize(("delay", "level"), [(0.4, "INFO"), (2.0, "WARNING")])
def test_evaluation_delay_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, delay: float, level: str
) -> None:
    settings = make_settings(tmp_path, rule_files=[REPOSITORY / "alerts" / "rules.yml"])
    folder = prometheus_reporting(tmp_path, delay)
    spec = http_server_spec("prometheus", settings.ports["prometheus"], folder)
    settings.state.mkdir(parents=True)
    stack = Stack(settings, specs=[spec])
    stack.processes.append(StackProcess(spec, settings.state / "prometheus.log"))
    try:
        stack.processes[0].wait_healthy(20)
        with caplog.at_level(logging.INFO, logger="deploy.stack"):
            stack.report_evaluation_delays(threading.Event())
    finally:
        stack.stop()
    (record,) = [r for r in caplog.records if "after each scrape" in r.getMessage()]
    assert record.levelname == level
    assert f"warden-containers {delay:.2f} s" in record.getMessage()


def test_second_stack_on_state_rejected(tmp_path: Path) -> None:
    require_binary("promtool")
    settings = make_settings(tmp_path)
    folder = tmp_path / "www"
    folder.mkdir()
    first = Stack(
        settings, specs=[http_server_spec("first", settings.ports["exporter"], folder)]
    )
    other_ports = {part: free_port() for part in settings.ports}
    second_settings = make_settings(tmp_path, ports=other_ports)
    second = Stack(
        second_settings,
        specs=[http_server_spec("second", other_ports["exporter"], folder)],
    )
    with first:
        first.start(timeout=20)
        token = settings.token_path.read_text()
        with pytest.raises(StackProcessError) as raised:
            second.start(timeout=20)
        assert f"state folder {settings.state} is in use" in str(raised.value)
        assert f"pid {os.getpid()}" in str(raised.value)
        assert settings.token_path.read_text() == token
        assert second.processes == []
    # Once the first stack has stopped, the folder is free again.
    with second:
        second.start(timeout=20)


def test_config_rejected_while_stack_runs(tmp_path: Path) -> None:
    require_binary("promtool")
    settings = make_settings(tmp_path)
    folder = tmp_path / "www"
    folder.mkdir()
    spec = http_server_spec("first", settings.ports["exporter"], folder)
    with Stack(settings, specs=[spec]) as stack:
        stack.start(timeout=20)
        before = settings.prometheus_config_path.read_text()
        result = subprocess.run(
            [sys.executable, "-m", "deploy.stack", "config"],
            cwd=REPOSITORY,
            env={**os.environ, "WARDEN_STATE": str(settings.state)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        after = settings.prometheus_config_path.read_text()
    assert result.returncode == 1, result.stderr
    assert f"state folder {settings.state} is in use" in result.stderr
    assert after == before
