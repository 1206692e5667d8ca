"""Settings come from flags and WARDEN_ENFORCER_* variables, validated once."""

from __future__ import annotations

from pathlib import Path

import pytest

from enforcer.settings import (
    ProtectRules,
    SettingsError,
    env_name,
    load_settings,
    parse_duration,
    parse_listen_address,
    parse_protect,
    parse_size,
)


def token_file(tmp_path: Path, content: str = "s3cret\n") -> Path:
    path = tmp_path / "token"
    path.write_text(content)
    return path


def test_defaults_listen_on_loopback() -> None:
    settings = load_settings([], environ={})
    assert settings.listen_address == "127.0.0.1:9649"
    assert settings.max_actions_per_minute == 10
    assert settings.stop_grace_seconds == 10.0
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.token is None
    assert settings.dry_run is False
    assert settings.protect == ProtectRules()


def test_env_name_follows_flag() -> None:
    assert env_name("--web.listen-address") == "WARDEN_ENFORCER_WEB_LISTEN_ADDRESS"
    assert env_name("--dry-run") == "WARDEN_ENFORCER_DRY_RUN"


def test_environment_sets_every_flag(tmp_path: Path) -> None:
    environ = {
        "WARDEN_ENFORCER_WEB_LISTEN_ADDRESS": "127.0.0.1:19649",
        "WARDEN_ENFORCER_WEBHOOK_TOKEN_FILE": str(token_file(tmp_path)),
        "WARDEN_ENFORCER_AUDIT_PATH": str(tmp_path / "a.jsonl"),
        "WARDEN_ENFORCER_DOCKER_HOST": "unix:///run/docker.sock",
        "WARDEN_ENFORCER_DRY_RUN": "true",
        "WARDEN_ENFORCER_PROTECT": "db,team=infra",
        "WARDEN_ENFORCER_ACTIONS_MAX_PER_MINUTE": "3",
        "WARDEN_ENFORCER_STOP_GRACE_PERIOD": "2500ms",
        "WARDEN_ENFORCER_WEB_MAX_BODY_BYTES": "64KiB",
        "WARDEN_ENFORCER_LOG_LEVEL": "debug",
        "WARDEN_ENFORCER_LOG_FORMAT": "json",
    }
    settings = load_settings([], environ=environ)
    assert settings.listen_port == 19649
    assert settings.token == "s3cret"
    assert settings.audit_path == tmp_path / "a.jsonl"
    assert settings.docker_host == "unix:///run/docker.sock"
    assert settings.dry_run is True
    assert settings.protect.names == {"db"}
    assert settings.protect.labels == {("team", "infra")}
    assert settings.max_actions_per_minute == 3
    assert settings.stop_grace_seconds == 2.5
    assert settings.max_body_bytes == 64 * 1024
    assert settings.log_level == "debug"
    assert settings.log_format == "json"


def test_flag_wins_over_environment() -> None:
    environ = {"WARDEN_ENFORCER_ACTIONS_MAX_PER_MINUTE": "3"}
    settings = load_settings(["--actions.max-per-minute=7"], environ=environ)
    assert settings.max_actions_per_minute == 7


def test_protect_repeatable_and_comma_separated() -> None:
    settings = load_settings(
        ["--protect", "web,/db", "--protect", "warden.role=monitoring"], environ={}
    )
    assert settings.protect.names == {"web", "db"}
    assert settings.protect.labels == {("warden.role", "monitoring")}


def test_token_strips_one_newline(tmp_path: Path) -> None:
    path = token_file(tmp_path, "abc \n")
    settings = load_settings([f"--webhook.token-file={path}"], environ={})
    # Only the newline goes; other whitespace is part of the token.
    assert settings.token == "abc "


def test_token_kept_out_of_repr(tmp_path: Path) -> None:
    path = token_file(tmp_path, "very-secret-token\n")
    settings = load_settings([f"--webhook.token-file={path}"], environ={})
    assert "very-secret-token" not in repr(settings)


@pytest.mark.parametrize("content", ["", "\n", "   \n"])
def test_empty_token_file_rejected(tmp_path: Path, content: str) -> None:
    path = token_file(tmp_path, content)
    with pytest.raises(SettingsError) as caught:
        load_settings([f"--webhook.token-file={path}"], environ={})
    assert caught.value.flag == "--webhook.token-file"
    assert str(path) in str(caught.value)


def test_unreadable_token_names_path(tmp_path: Path) -> None:
    path = tmp_path / "missing-token"
    with pytest.raises(SettingsError) as caught:
        load_settings([f"--webhook.token-file={path}"], environ={})
    assert str(path) in str(caught.value)


def test_multiline_token_rejected_without_content(tmp_path: Path) -> None:
    path = token_file(tmp_path, "first-secret\nsecond-secret\n")
    with pytest.raises(SettingsError) as caught:
        load_settings([f"--webhook.token-file={path}"], environ={})
    assert "first-secret" not in str(caught.value)
    assert "second-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "address",
    [":9649", "0.0.0.0:9649", "[::]:9649", "192.0.2.1:9649", "example.org:9649"],
)
def test_non_loopback_without_token_rejected(address: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings([f"--web.listen-address={address}"], environ={})
    assert caught.value.flag == "--web.listen-address"
    assert "--webhook.token-file" in str(caught.value)


def test_non_loopback_with_token_accepted(tmp_path: Path) -> None:
    path = token_file(tmp_path)
    settings = load_settings(
        ["--web.listen-address=:9649", f"--webhook.token-file={path}"], environ={}
    )
    assert settings.listen_host == ""


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9649", ("127.0.0.1", 9649)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:9649", ("::1", 9649)),
        (":80", ("", 80)),
    ],
)
def test_listen_address_parsed(address: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize(
    "address", ["9649", "127.0.0.1", "host:0", "h:70000", "::1:9649", "a:b"]
)
def test_bad_listen_address_rejected(address: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_listen_address(address)
    assert "host:port" in str(caught.value) or "port" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("10s", 10.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("0s", 0.0),
        ("1.5s", 1.5),
    ],
)
def test_durations_parsed(raw: str, seconds: float) -> None:
    assert parse_duration("--stop.grace-period", raw) == seconds


@pytest.mark.parametrize("raw", ["10", "-1s", "s", "10 sec", ""])
def test_bad_duration_names_flag(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_duration("--stop.grace-period", raw)
    assert caught.value.flag == "--stop.grace-period"
    assert "10s" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "size"),
    [("1048576", 1048576), ("1MiB", 1048576), ("4KiB", 4096), ("1MB", 1000000)],
)
def test_sizes_parsed(raw: str, size: int) -> None:
    assert parse_size("--web.max-body-bytes", raw) == size


@pytest.mark.parametrize("raw", ["0", "-5", "1 MiB", "lots", "1.5MiB"])
def test_bad_size_rejected(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_size("--web.max-body-bytes", raw)
    assert caught.value.flag == "--web.max-body-bytes"


@pytest.mark.parametrize("raw", ["0", "-1", "ten", "1.5"])
def test_bad_rate_limit_rejected(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings([f"--actions.max-per-minute={raw}"], environ={})
    assert caught.value.flag == "--actions.max-per-minute"


@pytest.mark.parametrize("entry", ["=value", "bad name", "-x", "a=b,c d"])
def test_bad_protect_entry_rejected(entry: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_protect([entry])
    assert caught.value.flag == "--protect"


def test_tls_needs_cert_and_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError) as caught:
        load_settings([f"--web.tls-cert-file={cert}"], environ={})
    assert "--web.tls-key-file" in str(caught.value)


def test_unreadable_tls_file_rejected(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError) as caught:
        load_settings(
            [f"--web.tls-cert-file={cert}", f"--web.tls-key-file={tmp_path}/nokey"],
            environ={},
        )
    assert caught.value.flag == "--web.tls-key-file"


@pytest.mark.parametrize(
    ("flag", "value"), [("--log.level", "verbose"), ("--log.format", "xml")]
)
def test_bad_log_setting_lists_choices(flag: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings([f"{flag}={value}"], environ={})
    assert caught.value.flag == flag
    assert "expected one of" in str(caught.value)


def test_bad_dry_run_variable_rejected() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings([], environ={"WARDEN_ENFORCER_DRY_RUN": "maybe"})
    assert "WARDEN_ENFORCER_DRY_RUN" in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "raw", "flag"),
    [
        ("WARDEN_ENFORCER_ACTIONS_MAX_PER_MINUTE", "0", "--actions.max-per-minute"),
        ("WARDEN_ENFORCER_STOP_GRACE_PERIOD", "soon", "--stop.grace-period"),
        ("WARDEN_ENFORCER_WEB_MAX_BODY_BYTES", "huge", "--web.max-body-bytes"),
        ("WARDEN_ENFORCER_WEB_LISTEN_ADDRESS", "0.0.0.0:1", "--web.listen-address"),
        ("WARDEN_ENFORCER_LOG_LEVEL", "loud", "--log.level"),
        ("WARDEN_ENFORCER_PROTECT", "bad name", "--protect"),
        ("WARDEN_ENFORCER_DRY_RUN", "maybe", "--dry-run"),
    ],
)
def test_bad_variable_named_with_flag(variable: str, raw: str, flag: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings([], environ={variable: raw})
    assert str(caught.value).startswith(f"invalid {variable} (for {flag}): ")
    assert caught.value.flag == flag


def test_bad_flag_named_without_variable() -> None:
    environ = {"WARDEN_ENFORCER_LOG_LEVEL": "info"}
    with pytest.raises(SettingsError) as caught:
        load_settings(["--actions.max-per-minute=0"], environ=environ)
    assert str(caught.value).startswith("invalid --actions.max-per-minute: ")


@pytest.mark.parametrize("mode", [0o666, 0o602, 0o777])
def test_token_writable_by_others_rejected(tmp_path: Path, mode: int) -> None:
    path = token_file(tmp_path, "very-secret-token\n")
    path.chmod(mode)
    with pytest.raises(SettingsError) as caught:
        load_settings([f"--webhook.token-file={path}"], environ={})
    assert caught.value.flag == "--webhook.token-file"
    assert f"{mode:04o}" in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)
    assert "very-secret-token" not in str(caught.value)


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o620])
def test_token_readable_by_others_warns(tmp_path: Path, mode: int) -> None:
    path = token_file(tmp_path, "very-secret-token\n")
    path.chmod(mode)
    settings = load_settings([f"--webhook.token-file={path}"], environ={})
    assert settings.token == "very-secret-token"
    assert len(settings.warnings) == 1
    assert str(path) in settings.warnings[0]
    assert f"{mode:04o}" in settings.warnings[0]
    assert "very-secret-token" not in settings.warnings[0]


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_token_gives_no_warning(tmp_path: Path, mode: int) -> None:
    path = token_file(tmp_path)
    path.chmod(mode)
    settings = load_settings([f"--webhook.token-file={path}"], environ={})
    assert settings.warnings == ()
