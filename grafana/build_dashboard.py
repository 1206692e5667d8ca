"""Generate grafana/dashboards/warden.json from grafana/sections.py.

The CPU, memory and PID panels draw threshold lines at the levels of the
alert policy in alerts/policy.yml, so the graphs and the alerts cannot
disagree. Run it after changing the policy or a panel:

    python -m grafana.build_dashboard            # rewrite the JSON
    python -m grafana.build_dashboard --check    # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from alerts.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy
from grafana.panels import annotation, datasource_variable, query_variable
from grafana.sections import (
    ACTED_ON_CONTAINERS,
    EXPORTER,
    PolicyLevels,
    container_panels,
    enforcement_panels,
    health_panels,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_PATH = ROOT / "grafana" / "dashboards" / "warden.json"

DASHBOARD_UID = "warden-runtime-guard"
# Grafana 9.5, the image in deploy/docker-compose.yml, saves schema version 38.
# Later versions migrate it when they load the dashboard.
SCHEMA_VERSION = 38


def build_dashboard(levels: PolicyLevels) -> dict[str, Any]:
    """Build the dashboard as Grafana's JSON model."""
    panels = container_panels(levels) + enforcement_panels() + health_panels()
    for panel_id, panel in enumerate(panels, start=1):
        panel["id"] = panel_id
    return {
        "id": None,
        "uid": DASHBOARD_UID,
        "title": "Warden runtime guard",
        "description": "Containers near their limits, what the enforcer "
        "killed and why, and the health of the exporter and the enforcer.",
        "tags": ["warden", "docker", "containers"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                annotation(
                    "Enforcement actions",
                    ACTED_ON_CONTAINERS,
                    title="{{name}}: {{violation}}",
                    text="{{action}} {{id}} on {{instance}}",
                    tags="violation,action",
                ),
            ]
        },
        "templating": {
            "list": [
                datasource_variable(),
                query_variable(
                    "instance",
                    "Exporter",
                    "label_values(warden_exporter_containers, instance)",
                ),
                query_variable(
                    "name",
                    "Container",
                    f"label_values(docker_container_info{{{EXPORTER}}}, name)",
                ),
            ]
        },
        "panels": panels,
    }


def render(levels: PolicyLevels) -> str:
    """Render the dashboard as the text committed to the repository."""
    return json.dumps(build_dashboard(levels), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboard JSON, or with --check report whether it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policy",
        type=Path,
        default=DEFAULT_POLICY_PATH,
        help="alert policy YAML file (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DASHBOARD_PATH,
        help="dashboard JSON file (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the output differs from the generated JSON",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    try:
        policy = load_policy(args.policy)
    except PolicyError as error:
        logger.error("%s", error)
        return 2
    text = render(PolicyLevels.from_policy(policy))
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            logger.error(
                "%s is stale; run python -m grafana.build_dashboard", args.output
            )
            return 1
        return 0
    args.output.write_text(text)
    logger.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
