"""Settings from flags, WARDEN_EXPORTER_* variables and defaults."""

from __future__ import annotations

import pytest

from exporter.settings import (
    SettingsError,
    build_parser,
    env_name,
    parse_duration,
    parse_listen_address,
    parse_sample_interval,
    parse_settings,
)


def settings_error(
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    environ: dict[str, str] | None = None,
) -> str:
    with pytest.raises(SystemExit) as raised:
        parse_settings(argv, environ or {})
    assert raised.value.code == 2
    return capsys.readouterr().err


def test_defaults_without_flags() -> None:
    settings = parse_settings([], {})
    assert settings.listen_host == ""
    assert settings.listen_port == 9648
    assert settings.telemetry_path == "/metrics"
    assert settings.docker_host is None
    assert settings.cgroup_root == "/sys/fs/cgroup"
    assert settings.proc_root == "/proc"
    assert settings.source == "auto"
    assert settings.label_allowlist == ()
    assert settings.resync_interval == 60.0
    assert settings.docker_timeout == 10.0
    assert settings.cpu_sample_interval == 1.0
    assert settings.log_level == "info"
    assert settings.log_format == "logfmt"


def test_environment_sets_every_flag() -> None:
    environ = {
        "WARDEN_EXPORTER_WEB_LISTEN_ADDRESS": "127.0.0.1:9700",
        "WARDEN_EXPORTER_WEB_TELEMETRY_PATH": "/m",
        "WARDEN_EXPORTER_DOCKER_HOST": "unix:///run/other.sock",
        "WARDEN_EXPORTER_DOCKER_TIMEOUT": "2500ms",
        "WARDEN_EXPORTER_CGROUP_ROOT": "/host/sys/fs/cgroup",
        "WARDEN_EXPORTER_PROC_ROOT": "/host/proc",
        "WARDEN_EXPORTER_SOURCE": "api",
        "WARDEN_EXPORTER_LABEL_ALLOWLIST": "team, owner",
        "WARDEN_EXPORTER_DISCOVERY_RESYNC_INTERVAL": "2m",
        "WARDEN_EXPORTER_CPU_SAMPLE_INTERVAL": "250ms",
        "WARDEN_EXPORTER_LOG_LEVEL": "debug",
        "WARDEN_EXPORTER_LOG_FORMAT": "json",
    }
    settings = parse_settings([], environ)
    assert settings.listen_address == "127.0.0.1:9700"
    assert settings.telemetry_path == "/m"
    assert settings.docker_host == "unix:///run/other.sock"
    assert settings.docker_timeout == 2.5
    assert settings.cgroup_root == "/host/sys/fs/cgroup"
    assert settings.proc_root == "/host/proc"
    assert settings.source == "api"
    assert settings.label_allowlist == ("team", "owner")
    assert settings.resync_interval == 120.0
    assert settings.cpu_sample_interval == 0.25
    assert settings.log_level == "debug"
    assert settings.log_format == "json"


def test_flag_wins_over_environment() -> None:
    environ = {"WARDEN_EXPORTER_SOURCE": "api"}
    assert parse_settings(["--source=cgroup"], environ).source == "cgroup"


def test_env_name_from_flag() -> None:
    assert env_name("--web.listen-address") == "WARDEN_EXPORTER_WEB_LISTEN_ADDRESS"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        (":9648", "", 9648),
        ("127.0.0.1:80", "127.0.0.1", 80),
        ("[::1]:9648", "::1", 9648),
        ("localhost:0", "localhost", 0),
    ],
)
def test_listen_address_forms(text: str, host: str, port: int) -> None:
    assert parse_listen_address(text) == (host, port)


@pytest.mark.parametrize("text", ["9648", "host:", "::1:9648", ":70000", "a:b"])
def test_listen_address_invalid(text: str) -> None:
    with pytest.raises(SettingsError):
        parse_listen_address(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("60", 60.0), ("60s", 60.0), ("1.5m", 90.0), ("1h", 3600)]
)
def test_duration_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0.0), ("0s", 0.0), ("0.0ms", 0.0), ("100ms", 0.1)]
)
def test_sample_interval_forms(text: str, seconds: float) -> None:
    assert parse_sample_interval(text) == seconds


def test_help_shows_sample_interval() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "--cpu.sample-interval" in text
    assert "(default: '1s')" in text
    assert "WARDEN_EXPORTER_CPU_SAMPLE_INTERVAL" in text


@pytest.mark.parametrize(
    ("argv", "flag", "accepted"),
    [
        (["--source=files"], "--source", "auto, cgroup, api"),
        (["--web.listen-address=9648"], "--web.listen-address", "host:port"),
        (["--web.telemetry-path=metrics"], "--web.telemetry-path", "must start"),
        (["--docker.host=/var/run/docker.sock"], "--docker.host", "unix://"),
        (["--discovery.resync-interval=0s"], "--discovery.resync-interval", "than 0"),
        (["--docker.timeout=soon"], "--docker.timeout", "60s"),
        (["--log.level=trace"], "--log.level", "debug, info, warning, error"),
        (["--log.format=xml"], "--log.format", "logfmt, json"),
        (["--label-allowlist=a b"], "--label-allowlist", "whitespace"),
        (["--label-allowlist=a.b,a-b"], "--label-allowlist", "both become"),
        (["--cgroup.root="], "--cgroup.root", "empty"),
        (["--cpu.sample-interval=50ms"], "--cpu.sample-interval", "100ms"),
        (["--cpu.sample-interval=-1s"], "--cpu.sample-interval", "0 to turn"),
        (["--cpu.sample-interval=often"], "--cpu.sample-interval", "0 to turn"),
    ],
)
def test_invalid_flag_exits_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str, accepted: str
) -> None:
    message = settings_error(capsys, argv)
    assert f"argument {flag}" in message
    assert accepted in message


def test_invalid_environment_names_variable(capsys: pytest.CaptureFixture[str]) -> None:
    message = settings_error(capsys, [], {"WARDEN_EXPORTER_SOURCE": "files"})
    assert "WARDEN_EXPORTER_SOURCE (for --source)" in message
    assert "auto, cgroup, api" in message


def test_unknown_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    message = settings_error(capsys, ["--no-such-flag"])
    assert "--no-such-flag" in message


def test_help_shows_defaults_and_variables() -> None:
    text = " ".join(build_parser().format_help().split())
    assert "(default: ':9648')" in text
    assert "WARDEN_EXPORTER_WEB_LISTEN_ADDRESS" in text
    assert "(default: '/sys/fs/cgroup')" in text
