"""Build pieces of Grafana's dashboard JSON model (schema version 38).

Every panel, target, variable and annotation points at the ``datasource``
template variable, so the dashboard works against any Prometheus that the
operator picks, with the provisioned one as the default.
"""

from __future__ import annotations

from typing import Any

DATASOURCE_UID = "warden-prometheus"
DATASOURCE_NAME = "Warden Prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Grid = tuple[int, int, int, int]

# Colours of the threshold steps, lowest level first.
LEVEL_COLOURS = ("orange", "red")


def target(
    expr: str,
    legend: str = "__auto",
    ref_id: str = "A",
    instant: bool = False,
    table_range: bool = False,
) -> dict[str, Any]:
    """Build a Prometheus query target."""
    query: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "refId": ref_id,
        "range": not instant,
        "instant": instant,
    }
    if instant or table_range:
        query["format"] = "table"
    return query


def _grid(grid: Grid) -> dict[str, int]:
    x, y, width, height = grid
    return {"x": x, "y": y, "w": width, "h": height}


def _thresholds(levels: list[float]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    colours = LEVEL_COLOURS[-len(levels) :] if levels else ()
    for colour, level in zip(colours, sorted(levels), strict=True):
        steps.append({"color": colour, "value": level})
    return {"mode": "absolute", "steps": steps}


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    grid: Grid,
    defaults: dict[str, Any],
    options: dict[str, Any],
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": _grid(grid),
        "fieldConfig": {"defaults": {"min": 0, **defaults}, "overrides": []},
        "options": options,
        "targets": targets,
    }


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    grid: Grid,
    thresholds: list[float] | None = None,
    bars: bool = False,
    dashed_series: str | None = None,
) -> dict[str, Any]:
    """Build a time series panel, with dashed threshold lines when given."""
    custom: dict[str, Any] = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
        "axisSoftMin": 0,
        "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
    }
    panel = _panel(
        "timeseries",
        title,
        description,
        targets,
        grid,
        defaults={
            "unit": unit,
            "custom": custom,
            "thresholds": _thresholds(thresholds or []),
        },
        options={
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )
    if dashed_series:
        panel["fieldConfig"]["overrides"].append(
            {
                "matcher": {"id": "byRegexp", "options": f".*{dashed_series}"},
                "properties": [
                    {
                        "id": "custom.lineStyle",
                        "value": {"fill": "dash", "dash": [10, 10]},
                    },
                    {"id": "custom.fillOpacity", "value": 0},
                ],
            }
        )
    return panel


def stat(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    grid: Grid,
    up_down: bool = False,
    red_above_zero: bool = False,
) -> dict[str, Any]:
    """Build a stat panel of the latest value of each series."""
    defaults: dict[str, Any] = {"unit": "none", "decimals": 0}
    if up_down:
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {
                    "0": {"text": "down", "color": "red"},
                    "1": {"text": "up", "color": "green"},
                },
            }
        ]
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
        }
    elif red_above_zero:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
        }
    else:
        defaults["thresholds"] = _thresholds([])
    return _panel(
        "stat",
        title,
        description,
        targets,
        grid,
        defaults=defaults,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "value_and_name",
            "justifyMode": "auto",
            "orientation": "auto",
        },
    )


def table(
    title: str,
    description: str,
    query: dict[str, Any],
    columns: list[str],
    grid: Grid,
    group_last_time: bool = False,
) -> dict[str, Any]:
    """Build a table of the label ``columns`` of each series.

    With ``group_last_time`` the rows of a range query collapse to one per
    label set, showing the last time it had a value, newest first.
    """
    transformations: list[dict[str, Any]] = [{"id": "merge", "options": {}}]
    if group_last_time:
        fields: dict[str, Any] = {
            column: {"aggregations": [], "operation": "groupby"} for column in columns
        }
        fields["Time"] = {"aggregations": ["max"], "operation": "aggregate"}
        transformations.append({"id": "groupBy", "options": {"fields": fields}})
        order = ["Time (max)", *columns]
        sort = {"field": "Last seen", "desc": True}
        excluded = {"Value": True, "__name__": True}
    else:
        # An instant query stamps every row with the query time; hide it.
        order = columns
        sort = {"field": columns[0], "desc": False}
        excluded = {"Time": True, "Value": True, "__name__": True}
    transformations.append(
        {
            "id": "organize",
            "options": {
                "excludeByName": excluded,
                "indexByName": {name: index for index, name in enumerate(order)},
                "renameByName": {"Time (max)": "Last seen"},
            },
        }
    )
    transformations.append({"id": "sortBy", "options": {"sort": [sort]}})
    return _panel(
        "table",
        title,
        description,
        [query],
        grid,
        defaults={"unit": "none", "custom": {"align": "auto"}},
        options={"showHeader": True, "cellHeight": "sm"},
    ) | {"transformations": transformations}


def row(title: str, y: int) -> dict[str, Any]:
    """Build an expanded row header spanning the dashboard's width."""
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": _grid((0, y, 24, 1)),
        "panels": [],
    }


def datasource_variable() -> dict[str, Any]:
    """Build the variable that selects the Prometheus every query runs on."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"text": DATASOURCE_NAME, "value": DATASOURCE_UID},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """Build a multi-select variable of label values, refreshed per time range."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable-query"},
        # 2 is "On time range change", so new containers appear without reload.
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
        "skipUrlSync": False,
    }


def annotation(
    name: str, expr: str, title: str, text: str, tags: str
) -> dict[str, Any]:
    """Build a Prometheus annotation that marks every point ``expr`` returns."""
    return {
        "name": name,
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "expr": expr,
        "step": "",
        "titleFormat": title,
        "textFormat": text,
        "tagKeys": tags,
        "useValueForTime": False,
        "target": {
            "datasource": DATASOURCE,
            "expr": expr,
            "refId": "Annotations",
            "range": True,
            "instant": False,
        },
    }
