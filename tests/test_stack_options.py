"""Flags and variables of the stack: each bad value exits 2 and is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.config import StackConfigError
from deploy.options import settings_from_environment
from tests.services import require_binary

REPOSITORY = Path(__file__).resolve().parent.parent


def run_stack_command(
    tmp_path: Path, *flags: str, **environ: str
) -> subprocess.CompletedProcess[str]:
    """Run `python -m deploy.stack config` with flags on free ports."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.stack",
            "config",
            f"--state={tmp_path / 'state'}",
            *flags,
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "WARDEN_CONTAINER_NAME_REGEX": "^warden-e2e-",
            **environ,
        },
    )


@pytest.mark.parametrize("value", ["on", "y", "maybe", "enabled"])
def test_dry_run_rejects_loose_words(value: str) -> None:
    with pytest.raises(StackConfigError) as raised:
        settings_from_environment({"WARDEN_STACK_DRY_RUN": value})
    assert f"WARDEN_STACK_DRY_RUN={value!r}" in str(raised.value)
    assert "true, 1, yes, false, 0, no" in str(raised.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("", False),
    ],
)
def test_dry_run_accepts_strict_words(value: str, expected: bool) -> None:
    settings = settings_from_environment({"WARDEN_STACK_DRY_RUN": value})
    assert settings.dry_run is expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--exporter-port=99999"], "--exporter-port='99999' is not a TCP port"),
        (["--enforcer-port=0"], "--enforcer-port='0' is not a TCP port"),
        (
            ["--exporter-port=19500", "--prometheus-port=19500"],
            "--exporter-port and --prometheus-port are both 19500",
        ),
        (["--scrape-interval=0"], "--scrape-interval='0' is not an interval"),
        (["--scrape-interval=nan"], "--scrape-interval='nan' is not an interval"),
        (["--scrape-interval=7"], "--scrape-interval=7 does not match the 5 s"),
    ],
)
def test_invalid_flags_exit_2_naming_flag(
    tmp_path: Path, flags: list[str], expected: str
) -> None:
    result = run_stack_command(tmp_path, *flags)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_loose_dry_run_variable_exits_2(tmp_path: Path) -> None:
    result = run_stack_command(tmp_path, WARDEN_STACK_DRY_RUN="on")
    assert result.returncode == 2, result.stderr
    assert "WARDEN_STACK_DRY_RUN='on' is not a boolean" in result.stderr


def test_equal_port_variables_exit_2(tmp_path: Path) -> None:
    result = run_stack_command(
        tmp_path,
        WARDEN_STACK_ALERTMANAGER_PORT="19600",
        WARDEN_STACK_ENFORCER_PORT="19600",
    )
    assert result.returncode == 2, result.stderr
    assert "are both 19600" in result.stderr


def test_interval_matching_rules_is_accepted(tmp_path: Path) -> None:
    require_binary("promtool")
    require_binary("amtool")
    rules = tmp_path / "fast.rules.yml"
    rules.write_text("groups:\n- name: fast\n  interval: 1s\n  rules: []\n")
    result = run_stack_command(tmp_path, f"--rules={rules}", "--scrape-interval=1")
    assert result.returncode == 0, result.stderr


def test_rules_not_mapping_exits_2(tmp_path: Path) -> None:
    rules = tmp_path / "list.yml"
    rules.write_text("- name: a\n- name: b\n")
    result = run_stack_command(tmp_path, f"--rules={rules}")
    assert result.returncode == 2, result.stderr
    assert f"--rules={rules} is not a Prometheus rule file" in result.stderr
    assert "Traceback" not in result.stderr


def test_state_that_is_file_exits_2(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("a file")
    result = run_stack_command(tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"state folder {state} exists and is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_relative_rules_resolved(tmp_path: Path) -> None:
    require_binary("promtool")
    require_binary("amtool")
    result = run_stack_command(tmp_path, "--rules=alerts/rules.yml")
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "state" / "prometheus.yml").read_text()
    assert f"- {REPOSITORY / 'alerts' / 'rules.yml'}\n" in config


def test_rules_link_resolved(tmp_path: Path) -> None:
    require_binary("promtool")
    require_binary("amtool")
    link = tmp_path / "state" / "rules" / "0-rules.7.yml"
    link.parent.mkdir(parents=True)
    link.symlink_to(REPOSITORY / "alerts" / "rules.yml")
    result = run_stack_command(tmp_path, f"--rules={link}")
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "state" / "prometheus.yml").read_text()
    assert f"- {REPOSITORY / 'alerts' / 'rules.yml'}\n" in config


def test_rules_folder_that_is_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "rules").write_text("a file")
    result = run_stack_command(tmp_path)
    assert result.returncode == 2, result.stderr
    assert "rules is not a folder" in result.stderr
    assert "Traceback" not in result.stderr
