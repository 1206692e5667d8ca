"""The rules against promtool 2.42: syntax, lint and the unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from alerts.policy import load_policy
from alerts.render import DEFAULT_RULES_PATH, write_rules
from tests.alerts.test_render import FAST_OVERRIDES
from tests.services import require_binary

UNIT_TESTS = sorted((DEFAULT_RULES_PATH.parent / "tests").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False
    )


def check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    # --lint=all with --lint-fatal makes duplicate rules exit with status 3.
    return promtool("check", "rules", "--lint=all", "--lint-fatal", str(path))


def test_committed_rules_pass_check() -> None:
    result = check_rules(DEFAULT_RULES_PATH)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_exist_per_alert_file() -> None:
    names = {path.stem for path in UNIT_TESTS}
    assert names >= {
        "cpu_spike",
        "memory_spike",
        "fork_bomb",
        "combined_anomaly",
        "health",
    }


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_fast_policy_renders_valid_rules(tmp_path: Path) -> None:
    path = write_rules(load_policy(overrides=FAST_OVERRIDES), tmp_path / "rules.yml")
    result = check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_detects_broken_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    text = DEFAULT_RULES_PATH.read_text()
    path.write_text(text.replace("> 0.95", "> > 0.95", 1))
    result = check_rules(path)
    assert result.returncode != 0
