"""The rendered rules: committed file, label contract and static checks.

The static checks are those a rule linter such as pint runs: required
labels and annotations, rate windows long enough for the scrape interval,
runbook links that resolve.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.__main__ import main
from alerts.containers import ALERT_NAMES, CPU_RATIO, MEMORY_RATIO, PIDS_RATIO
from alerts.policy import Duration, Policy, load_policy
from alerts.render import DEFAULT_RULES_PATH, render_rules
from alerts.rule import runbook_anchor

REPOSITORY = Path(__file__).resolve().parents[2]
RUNBOOK = REPOSITORY / "docs" / "runbook.md"

# A policy as the end-to-end tests use it: 1 s scrapes and short fors.
FAST_OVERRIDES = [
    "scrape_interval=1s",
    "evaluation_interval=1s",
    "rate_window=10s",
    "health_for=5s",
    "violations.cpu_spike.for=3s",
    "violations.memory_spike.for=2s",
]

ENFORCEMENT_LABELS = {"action", "violation", "severity"}
SERIES_LABELS = {"id", "name", "instance"}
ANNOTATIONS = {"summary", "description", "runbook_url"}

_RANGE = re.compile(r"\[([0-9a-z]+)(?::[0-9a-z]*)?\]")
_UNPROTECTED_MATCH = re.compile(
    r"and on \(id, instance\)\s+\(\s+time\(\) - timestamp\("
    r'docker_container_info\{[^}]*protected="false"\}\) < ([0-9.]+)\s+\)\Z'
)
_RANGE_FUNCTION = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv)\(")


def rules_of(policy: Policy) -> list[dict[str, Any]]:
    document = yaml.safe_load(render_rules(policy))
    return [rule for group in document["groups"] for rule in group["rules"]]


def alerts_of(policy: Policy) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules_of(policy) if "alert" in rule}


POLICIES = {
    "default": load_policy(),
    "fast": load_policy(overrides=FAST_OVERRIDES),
}


@pytest.fixture(params=sorted(POLICIES))
def policy(request: pytest.FixtureRequest) -> Policy:
    return POLICIES[request.param]


def test_committed_rules_match_policy() -> None:
    assert DEFAULT_RULES_PATH.read_text() == render_rules(load_policy())


def test_check_flag_accepts_committed_rules() -> None:
    assert main(["--check"]) == 0


def test_check_flag_reports_stale_rules(tmp_path: Path) -> None:
    output = tmp_path / "rules.yml"
    output.write_text(render_rules(load_policy()) + "# edited\n")
    assert main(["--check", "--output", str(output)]) == 1


def test_rendering_is_deterministic() -> None:
    assert render_rules(load_policy()) == render_rules(load_policy())


def test_command_writes_output_folder(tmp_path: Path) -> None:
    output = tmp_path / "stack" / "rules" / "warden.yml"
    status = main(["--output", str(output), *_as_flags(FAST_OVERRIDES)])
    assert status == 0
    assert output.read_text() == render_rules(POLICIES["fast"])


def test_command_writes_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--output", "-"]) == 0
    assert capsys.readouterr().out == render_rules(load_policy())


def _as_flags(overrides: list[str]) -> list[str]:
    return [flag for override in overrides for flag in ("--set", override)]


def test_every_rule_has_severity_and_annotations(policy: Policy) -> None:
    for name, rule in alerts_of(policy).items():
        assert rule["labels"].get("severity") in {"critical", "warning", "info"}, name
        assert set(rule["annotations"]) == ANNOTATIONS, name
        for key in ANNOTATIONS:
            assert rule["annotations"][key].strip(), f"{name} {key}"


def test_enforcement_alerts_carry_label_contract(policy: Policy) -> None:
    alerts = alerts_of(policy)
    for violation, name in ALERT_NAMES.items():
        rule = alerts[name]
        labels = rule["labels"]
        assert set(labels) >= ENFORCEMENT_LABELS, name
        assert labels["severity"] == "critical", name
        assert labels["violation"] == violation, name
        assert labels["action"] == policy.violations[violation].action, name
        # id, name and instance are not set by the rule, so they come from
        # the series, which keep them through every aggregation.
        assert not SERIES_LABELS & set(labels), name


def test_ratios_keep_series_labels() -> None:
    records = {
        rule["record"]: rule
        for rule in rules_of(POLICIES["default"])
        if "record" in rule
    }
    assert set(records) == {CPU_RATIO, MEMORY_RATIO, PIDS_RATIO}
    for name, rule in records.items():
        groupings = re.findall(r"by \(([^)]*)\)", rule["expr"])
        assert groupings, name
        for grouping in groupings:
            labels = {label.strip() for label in grouping.split(",")}
            assert labels == {"id", "name", "instance", "job"}, name


def test_enforcement_alerts_require_unprotected_info(policy: Policy) -> None:
    alerts = alerts_of(policy)
    for name in ALERT_NAMES.values():
        expr = alerts[name]["expr"]
        match = _UNPROTECTED_MATCH.search(expr)
        assert match, name
        assert "unless" not in expr, name
        # The info sample must be less than two scrape intervals old.
        assert float(match.group(1)) == 2 * policy.scrape_interval.seconds, name


def test_enforcement_descriptions_show_values(policy: Policy) -> None:
    alerts = alerts_of(policy)
    for name in ALERT_NAMES.values():
        description = alerts[name]["annotations"]["description"]
        assert "$labels.name" in description, name
        assert "humanizePercentage" in description, name
    memory = alerts["ContainerMemorySpike"]["annotations"]["description"]
    assert "humanize1024" in memory


def test_people_alerts_have_no_action(policy: Policy) -> None:
    enforcement = set(ALERT_NAMES.values())
    for name, rule in alerts_of(policy).items():
        if name not in enforcement:
            assert "action" not in rule["labels"], name


def test_action_none_drops_action_label() -> None:
    policy = load_policy(overrides=["violations.cpu_spike.action=none"])
    labels = alerts_of(policy)["ContainerCPUSpike"]["labels"]
    assert "action" not in labels
    assert labels["violation"] == "cpu_spike"


def test_action_from_policy_is_rendered() -> None:
    policy = load_policy(overrides=["violations.memory_spike.action=pause"])
    labels = alerts_of(policy)["ContainerMemorySpike"]["labels"]
    assert labels["action"] == "pause"


def test_acted_alert_drops_counter_action_label() -> None:
    expr = alerts_of(POLICIES["default"])["WardenEnforcerActed"]["expr"]
    assert "sum by (instance, job, violation, result)" in expr


def test_rate_windows_hold_four_scrapes(policy: Policy) -> None:
    minimum = 4 * policy.scrape_interval.milliseconds
    for rule in rules_of(policy):
        expr = rule["expr"]
        if not _RANGE_FUNCTION.search(expr):
            continue
        windows = _RANGE.findall(expr)
        assert windows, expr
        for window in windows:
            assert Duration.parse(window).milliseconds >= minimum, expr


def test_no_rule_fires_on_one_check(policy: Policy) -> None:
    evaluation = policy.evaluation_interval
    for name in ALERT_NAMES.values():
        rule = alerts_of(policy)[name]
        assert Duration.parse(rule["for"]).milliseconds >= evaluation.milliseconds


def test_thresholds_come_from_policy() -> None:
    policy = load_policy(
        overrides=[
            "violations.cpu_spike.threshold=0.5",
            "violations.combined_anomaly.memory_threshold=0.7",
        ]
    )
    alerts = alerts_of(policy)
    assert f"{CPU_RATIO} > 0.5" in alerts["ContainerCPUSpike"]["expr"]
    assert f"{MEMORY_RATIO} > 0.7" in alerts["ContainerCombinedAnomaly"]["expr"]


def test_job_names_come_from_policy() -> None:
    policy = load_policy(overrides=["jobs.exporter=cadvisor", "jobs.enforcer=guard"])
    for rule in rules_of(policy):
        jobs = set(re.findall(r'job="([^"]*)"', rule["expr"]))
        assert jobs <= {"cadvisor", "guard"}, rule["expr"]


def _runbook_anchors() -> set[str]:
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchor = re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-")
            anchors.add(anchor)
    return anchors


def test_runbook_has_every_anchor(policy: Policy) -> None:
    anchors = _runbook_anchors()
    for name, rule in alerts_of(policy).items():
        url = rule["annotations"]["runbook_url"]
        address, _, anchor = url.partition("#")
        assert address == "docs/runbook.md", name
        assert anchor == runbook_anchor(name), name
        assert anchor in anchors, f"docs/runbook.md has no section {name}"


def test_runbook_base_url_is_configurable() -> None:
    base = "https://git.example.org/warden/blob/main/docs/runbook.md"
    policy = load_policy(overrides=[f"runbook_url={base}"])
    url = alerts_of(policy)["ContainerForkBomb"]["annotations"]["runbook_url"]
    assert url == f"{base}#containerforkbomb"
