"""Static checks of the dashboard JSON, the rules of Grafana's dashboard linter.

A dashboard that fails one of these still imports into Grafana, but shows
wrong or empty graphs: a panel bound to one datasource, a rate() over a
window shorter than two scrapes, a raw counter that only ever grows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alerts.policy import load_policy
from grafana import build_dashboard
from grafana.sections import PolicyLevels
from tests.grafana.dashboard import (
    DASHBOARD_PATH,
    bare_counters,
    graph_panels,
    load_dashboard,
    queries,
    rate_ranges,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
REQUIRED_KEYS = (
    "title",
    "uid",
    "panels",
    "templating",
    "annotations",
    "schemaVersion",
    "time",
)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in dashboard["templating"]["list"]}


def test_committed_json_matches_generator() -> None:
    expected = build_dashboard.render(PolicyLevels.from_policy(load_policy()))
    assert DASHBOARD_PATH.read_text() == expected, (
        "grafana/dashboards/warden.json is stale; run python -m grafana.build_dashboard"
    )


def test_generator_check_flags_stale_file(tmp_path: Path) -> None:
    output = tmp_path / "warden.json"
    output.write_text("{}\n")
    assert build_dashboard.main(["--check", "--output", str(output)]) == 1
    assert build_dashboard.main(["--output", str(output)]) == 0
    assert build_dashboard.main(["--check", "--output", str(output)]) == 0


def test_generator_rejects_invalid_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text("violations: []\n")
    output = tmp_path / "warden.json"
    assert build_dashboard.main(["--policy", str(policy), "--output", str(output)]) == 2
    assert not output.exists()


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_dashboard_has_required_field(dashboard: dict[str, Any], key: str) -> None:
    assert key in dashboard, f"dashboard lacks {key!r}"


def test_dashboard_id_is_null(dashboard: dict[str, Any]) -> None:
    assert dashboard["id"] is None


def test_dashboard_uid_is_stable_and_short(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "warden-runtime-guard"
    assert len(dashboard["uid"]) <= 40


def test_dashboard_has_no_import_inputs(dashboard: dict[str, Any]) -> None:
    assert "__inputs" not in dashboard


def test_dashboard_schema_is_recent(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {ids}"


def test_panels_have_grid_positions(dashboard: dict[str, Any]) -> None:
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}, panel["title"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than 24"


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = cells.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']} overlaps {other}"


def test_datasource_variable_selects_prometheus(dashboard: dict[str, Any]) -> None:
    variable = variables(dashboard)["datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"


def test_datasource_default_is_provisioned_uid(dashboard: dict[str, Any]) -> None:
    variable = variables(dashboard)["datasource"]
    assert variable["current"]["value"] == "warden-prometheus"


@pytest.mark.parametrize("name", ["instance", "name"])
def test_label_variable_is_multi_select(dashboard: dict[str, Any], name: str) -> None:
    variable = variables(dashboard)[name]
    assert variable["type"] == "query"
    assert variable["datasource"] == DATASOURCE
    assert variable["refresh"] == 2, "refresh on time range change"
    assert variable["multi"] is True
    assert variable["includeAll"] is True
    assert variable["allValue"] == ".+"
    assert variable["query"]["query"].startswith("label_values(")


def test_every_panel_uses_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in graph_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]


def test_every_target_uses_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in graph_panels(dashboard):
        for query in panel["targets"]:
            assert query["datasource"] == DATASOURCE, panel["title"]


def test_annotations_use_datasource_variable(dashboard: dict[str, Any]) -> None:
    annotations = [a for a in dashboard["annotations"]["list"] if "expr" in a]
    assert annotations, "no Prometheus annotation"
    for item in annotations:
        assert item["datasource"] == DATASOURCE, item["name"]


def test_every_panel_has_description(dashboard: dict[str, Any]) -> None:
    for panel in graph_panels(dashboard):
        assert panel.get("description", "").strip(), panel["title"]


def test_every_panel_has_unit(dashboard: dict[str, Any]) -> None:
    for panel in graph_panels(dashboard):
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]


def test_every_panel_has_minimum_zero(dashboard: dict[str, Any]) -> None:
    for panel in graph_panels(dashboard):
        assert panel["fieldConfig"]["defaults"].get("min") == 0, panel["title"]


def test_target_ref_ids_are_unique(dashboard: dict[str, Any]) -> None:
    for panel in graph_panels(dashboard):
        ref_ids = [query["refId"] for query in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_rates_use_rate_interval(dashboard: dict[str, Any]) -> None:
    for query in queries(dashboard):
        for function, window in rate_ranges(query.expr):
            assert window == "$__rate_interval", (
                f"{query.where}: {function}() over [{window}]"
            )


def test_counters_appear_only_inside_rates(dashboard: dict[str, Any]) -> None:
    for query in queries(dashboard):
        assert bare_counters(query.expr) == [], query.where


def test_ratio_panels_use_recording_rules(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(query.expr for query in queries(dashboard))
    for raw in (
        "docker_container_cpu_utilization_ratio",
        "docker_container_pids_limit",
    ):
        assert raw not in exprs, f"{raw} has a recording rule; query that instead"


def test_threshold_lines_follow_policy(dashboard: dict[str, Any]) -> None:
    policy = load_policy()
    levels = PolicyLevels.from_policy(policy)
    expected = {
        "CPU use of limit": sorted([levels.cpu, levels.combined_cpu]),
        "Memory working set of limit": sorted([levels.memory, levels.combined_memory]),
        "PIDs of limit": [levels.pids],
    }
    panels = {panel["title"]: panel for panel in graph_panels(dashboard)}
    for title, levels_expected in expected.items():
        defaults = panels[title]["fieldConfig"]["defaults"]
        steps = defaults["thresholds"]["steps"]
        assert [step["value"] for step in steps[1:]] == levels_expected, title
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "dashed", title


def test_annotation_marks_only_real_actions(dashboard: dict[str, Any]) -> None:
    (item,) = [a for a in dashboard["annotations"]["list"] if "expr" in a]
    assert 'result=~"killed|stopped|paused"' in item["expr"]
    assert "> 0" in item["expr"]
    assert item["titleFormat"] == "{{name}}: {{violation}}"


def test_json_is_formatted_stably() -> None:
    text = DASHBOARD_PATH.read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
