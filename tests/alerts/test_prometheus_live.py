"""A real Prometheus loads the rendered rules and evaluates them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alerts.policy import load_policy
from alerts.render import CONTAINER_GROUP, HEALTH_GROUP, write_rules
from tests.alerts.test_render import FAST_OVERRIDES
from tests.services import ServerFactory, http_get, wait_until


def rule_groups(url: str) -> list[dict[str, Any]]:
    status, body = http_get(f"{url}/api/v1/rules")
    assert status == 200, body
    return list(json.loads(body)["data"]["groups"])


def evaluated(groups: list[dict[str, Any]]) -> bool:
    """Return whether every rule has been evaluated at least once."""
    rules = [rule for group in groups for rule in group["rules"]]
    return bool(rules) and all(rule["health"] != "unknown" for rule in rules)


def test_prometheus_loads_rules_healthy(servers: ServerFactory, tmp_path: Path) -> None:
    policy = load_policy(overrides=FAST_OVERRIDES)
    rules = write_rules(policy, tmp_path / "warden-rules.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [],
    }
    prometheus = servers.prometheus(config, [rules])

    wait_until(
        lambda: evaluated(rule_groups(prometheus.url)),
        timeout=30,
        message="every rule to be evaluated once",
    )
    groups = rule_groups(prometheus.url)

    names = {group["name"] for group in groups}
    assert names == {CONTAINER_GROUP, HEALTH_GROUP}
    for group in groups:
        assert group["interval"] == 1, group["name"]
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
