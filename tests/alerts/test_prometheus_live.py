"""A real Prometheus loads the rendered rules and evaluates them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from alerts.policy import load_policy
from alerts.render import CONTAINER_GROUP, HEALTH_GROUP, write_rules
from tests.alerts.test_render import FAST_OVERRIDES
from tests.services import ServerFactory, free_port, http_get, wait_until


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


def exposition(containers: dict[str, tuple[str, int, bool]]) -> str:
    """Return exporter-like metrics for containers: name -> (id, pids, protected)."""
    lines = []
    for name, (container_id, pids, protected) in containers.items():
        labels = f'id="{container_id}",name="{name}"'
        flag = "true" if protected else "false"
        lines += [
            f'docker_container_info{{{labels},image="busybox",protected="{flag}"}} 1',
            f"docker_container_pids{{{labels}}} {pids}",
            f"docker_container_pids_limit{{{labels}}} 100",
        ]
    return "\n".join(lines) + "\n"


def firing(url: str, alertname: str) -> list[dict[str, str]]:
    status, body = http_get(f"{url}/api/v1/alerts")
    assert status == 200, body
    return [
        alert["labels"]
        for alert in json.loads(body)["data"]["alerts"]
        if alert["labels"]["alertname"] == alertname and alert["state"] == "firing"
    ]


def test_prometheus_fires_and_resolves_alert(
    servers: ServerFactory, tmp_path: Path
) -> None:
    # A static file replaces the exporter, so the test controls every
    # value while Prometheus scrapes, marks stale series and evaluates.
    site = tmp_path / "site"
    site.mkdir()
    metrics = site / "metrics"
    bomb_id = "b" * 64
    guarded_id = "9" * 64
    metrics.write_text(
        exposition({"bomb": (bomb_id, 95, False), "guarded": (guarded_id, 99, True)})
    )
    port = free_port()
    servers.start(
        "metrics",
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(site),
            str(port),
        ],
        port,
        ready_path="/metrics",
    )
    policy = load_policy(overrides=FAST_OVERRIDES)
    rules = write_rules(policy, tmp_path / "warden-rules.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": policy.exporter_job,
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }
        ],
    }
    prometheus = servers.prometheus(config, [rules])

    alerts = wait_until(
        lambda: firing(prometheus.url, "ContainerForkBomb"),
        timeout=30,
        message="ContainerForkBomb to fire",
    )
    assert alerts == [
        {
            "alertname": "ContainerForkBomb",
            "action": "kill",
            "violation": "fork_bomb",
            "severity": "critical",
            "id": bomb_id,
            "name": "bomb",
            "instance": f"127.0.0.1:{port}",
            "job": policy.exporter_job,
        }
    ]

    # Removing the container's series makes them stale at the next scrape.
    metrics.write_text(exposition({"guarded": (guarded_id, 99, True)}))
    wait_until(
        lambda: not firing(prometheus.url, "ContainerForkBomb"),
        timeout=30,
        message="ContainerForkBomb to resolve",
    )
