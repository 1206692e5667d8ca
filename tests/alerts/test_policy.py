"""Loading and validating the policy file, and the command's exit status."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from alerts.__main__ import main
from alerts.policy import (
    DEFAULT_POLICY_PATH,
    Duration,
    PolicyError,
    load_policy,
    parse_policy,
)


def default_document() -> dict[str, Any]:
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    assert isinstance(document, dict)
    return document


def write_policy(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_default_policy_matches_design() -> None:
    policy = load_policy()
    cpu = policy.violations["cpu_spike"]
    combined = policy.violations["combined_anomaly"]
    assert policy.scrape_interval == Duration(5000)
    assert policy.evaluation_interval == Duration(5000)
    assert cpu.thresholds == {"threshold": 0.95}
    assert cpu.for_ == Duration(15000)
    assert policy.violations["memory_spike"].for_ == Duration(10000)
    assert policy.violations["fork_bomb"].thresholds == {"threshold": 0.9}
    assert policy.violations["fork_bomb"].for_ == Duration(0)
    assert combined.thresholds == {"cpu_threshold": 0.8, "memory_threshold": 0.8}
    assert policy.exporter_job == "warden-exporter"
    assert policy.enforcer_job == "warden-enforcer"


@pytest.mark.parametrize(
    ("text", "milliseconds", "canonical"),
    [
        ("0s", 0, "0s"),
        ("15s", 15000, "15s"),
        ("500ms", 500, "500ms"),
        ("1m30s", 90000, "1m30s"),
        ("90s", 90000, "1m30s"),
        ("2h", 7200000, "2h"),
        ("1d", 86400000, "1d"),
    ],
)
def test_duration_parses_prometheus_syntax(
    text: str, milliseconds: int, canonical: str
) -> None:
    duration = Duration.parse(text)
    assert duration.milliseconds == milliseconds
    assert str(duration) == canonical


@pytest.mark.parametrize("text", ["", "15", "1.5s", "-5s", "5 s", "s", "5S", "1s1m"])
def test_duration_rejects_invalid_text(text: str) -> None:
    with pytest.raises(ValueError):
        Duration.parse(text)


def _set(path: str, value: Any) -> Any:
    """Return an edit that sets a dotted key of the default document."""

    def edit(document: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = document
        for part in parents:
            node = node[part]
        node[leaf] = value

    return edit


def _delete(path: str) -> Any:
    def edit(document: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = document
        for part in parents:
            node = node[part]
        del node[leaf]

    return edit


# Each case breaks the default policy in one way; the error must name the
# key so that the reader knows what to fix.
INVALID_CASES = [
    ("unknown violation", _set("violations.disk_spike", {}), "violations.disk_spike"),
    (
        "threshold zero",
        _set("violations.cpu_spike.threshold", 0),
        "violations.cpu_spike.threshold",
    ),
    (
        "threshold above one",
        _set("violations.memory_spike.threshold", 1.01),
        "violations.memory_spike.threshold",
    ),
    (
        "threshold negative",
        _set("violations.fork_bomb.threshold", -0.5),
        "violations.fork_bomb.threshold",
    ),
    (
        "threshold as percent text",
        _set("violations.cpu_spike.threshold", "95%"),
        "violations.cpu_spike.threshold",
    ),
    (
        "threshold boolean",
        _set("violations.cpu_spike.threshold", True),
        "violations.cpu_spike.threshold",
    ),
    (
        "combined cpu threshold",
        _set("violations.combined_anomaly.cpu_threshold", 2),
        "violations.combined_anomaly.cpu_threshold",
    ),
    (
        "combined memory threshold missing",
        _delete("violations.combined_anomaly.memory_threshold"),
        "violations.combined_anomaly.memory_threshold",
    ),
    (
        "bad for duration",
        _set("violations.cpu_spike.for", "15 seconds"),
        "violations.cpu_spike.for",
    ),
    (
        "for as number",
        _set("violations.memory_spike.for", 10),
        "violations.memory_spike.for",
    ),
    (
        "unknown action",
        _set("violations.cpu_spike.action", "restart"),
        "violations.cpu_spike.action",
    ),
    (
        "missing action",
        _delete("violations.fork_bomb.action"),
        "violations.fork_bomb.action",
    ),
    (
        "missing for",
        _delete("violations.memory_spike.for"),
        "violations.memory_spike.for",
    ),
    ("missing violation", _delete("violations.fork_bomb"), "violations.fork_bomb"),
    (
        "unknown key in violation",
        _set("violations.cpu_spike.threshhold", 0.9),
        "violations.cpu_spike.threshhold",
    ),
    ("violations not a mapping", _set("violations", ["cpu_spike"]), "violations"),
    ("missing scrape interval", _delete("scrape_interval"), "scrape_interval"),
    ("zero scrape interval", _set("scrape_interval", "0s"), "scrape_interval"),
    (
        "bad evaluation interval",
        _set("evaluation_interval", "5"),
        "evaluation_interval",
    ),
    (
        "evaluation faster than scrape",
        _set("evaluation_interval", "1s"),
        "evaluation_interval",
    ),
    ("short rate window", _set("rate_window", "15s"), "rate_window"),
    ("bad health for", _set("health_for", "soon"), "health_for"),
    ("runbook with anchor", _set("runbook_url", "docs/runbook.md#x"), "runbook_url"),
    ("missing runbook", _delete("runbook_url"), "runbook_url"),
    ("missing exporter job", _delete("jobs.exporter"), "jobs.exporter"),
    ("job with quote", _set("jobs.enforcer", 'warden"x'), "jobs.enforcer"),
    ("unknown job", _set("jobs.grafana", "grafana"), "jobs.grafana"),
    ("unknown top-level key", _set("scrape_intervall", "5s"), "scrape_intervall"),
]


@pytest.mark.parametrize(
    ("edit", "key"),
    [pytest.param(edit, key, id=name) for name, edit, key in INVALID_CASES],
)
def test_invalid_policy_names_key(edit: Any, key: str) -> None:
    document = copy.deepcopy(default_document())
    edit(document)
    with pytest.raises(PolicyError) as raised:
        parse_policy(document)
    assert str(raised.value).startswith(key), str(raised.value)


@pytest.mark.parametrize(
    ("name", "edit", "key"), INVALID_CASES, ids=[case[0] for case in INVALID_CASES]
)
def test_command_exits_2_on_invalid(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    edit: Any,
    key: str,
) -> None:
    document = copy.deepcopy(default_document())
    edit(document)
    policy_path = write_policy(tmp_path, document)
    output = tmp_path / "rules.yml"
    status = main(["--policy", str(policy_path), "--output", str(output)])
    assert status == 2
    assert key in capsys.readouterr().err
    assert not output.exists()


def test_non_mapping_policy_rejected(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("- cpu_spike\n")
    with pytest.raises(PolicyError, match="must contain a mapping"):
        load_policy(path)


def test_missing_policy_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.yml")


def test_invalid_yaml_rejected(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("violations: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_overrides_set_dotted_keys() -> None:
    policy = load_policy(
        overrides=[
            "scrape_interval=1s",
            "evaluation_interval=1s",
            "violations.cpu_spike.for=2s",
            "violations.cpu_spike.threshold=0.5",
            "violations.fork_bomb.action=none",
        ]
    )
    assert policy.scrape_interval == Duration(1000)
    assert policy.violations["cpu_spike"].for_ == Duration(2000)
    assert policy.violations["cpu_spike"].thresholds["threshold"] == 0.5
    assert policy.violations["fork_bomb"].action == "none"


def test_override_is_validated() -> None:
    with pytest.raises(PolicyError, match=r"^violations\.cpu_spike\.threshold"):
        load_policy(overrides=["violations.cpu_spike.threshold=1.5"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("scrape_interval", "expected KEY=VALUE"),
        ("=1s", "expected KEY=VALUE"),
        ("violations.disk.for=1s", "violations.disk is not a mapping"),
        ("scrape_interval.x=1s", "scrape_interval is not a mapping"),
    ],
)
def test_override_rejects_bad_syntax(override: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy(overrides=[override])


def test_command_exits_2_on_bad_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "rules.yml"
    status = main(["--output", str(output), "--set", "violations.cpu_spike.for=soon"])
    assert status == 2
    assert "violations.cpu_spike.for" in capsys.readouterr().err


def test_module_process_exits_2(tmp_path: Path) -> None:
    document = default_document()
    document["violations"]["cpu_spike"]["action"] = "restart"
    policy_path = write_policy(tmp_path, document)
    result = subprocess.run(
        [sys.executable, "-m", "alerts", "--policy", str(policy_path), "--output", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 2
    assert "violations.cpu_spike.action: 'restart' is unknown" in result.stderr
    assert result.stdout == ""


@given(milliseconds=st.integers(min_value=0, max_value=10 * 365 * 24 * 3600 * 1000))
def test_duration_text_round_trips(milliseconds: int) -> None:
    duration = Duration(milliseconds)
    assert Duration.parse(str(duration)) == duration
