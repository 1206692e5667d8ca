"""Checks of the Grafana provisioning files against the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from alerts.policy import load_policy
from tests.grafana.dashboard import PROVISIONING, load_dashboard

DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"


def load_yaml(folder: str) -> list[dict[str, Any]]:
    files = sorted((PROVISIONING / folder).glob("*.yml"))
    assert files, f"no provisioning file in {PROVISIONING / folder}"
    return [yaml.safe_load(Path(path).read_text()) for path in files]


def datasources() -> list[dict[str, Any]]:
    return [item for doc in load_yaml("datasources") for item in doc["datasources"]]


def providers() -> list[dict[str, Any]]:
    return [item for doc in load_yaml("dashboards") for item in doc["providers"]]


def test_provisioning_files_declare_api_version() -> None:
    for doc in load_yaml("datasources") + load_yaml("dashboards"):
        assert doc["apiVersion"] == 1


def test_datasource_is_prometheus_with_fixed_uid() -> None:
    (source,) = datasources()
    assert source["type"] == "prometheus"
    assert source["uid"] == "warden-prometheus"
    assert source["access"] == "proxy"


def test_datasource_interval_is_policy_scrape_interval() -> None:
    (source,) = datasources()
    scrape_interval = str(load_policy().scrape_interval)
    assert source["jsonData"]["timeInterval"] == scrape_interval


def test_dashboard_default_is_provisioned_datasource() -> None:
    (source,) = datasources()
    variable = next(
        item
        for item in load_dashboard()["templating"]["list"]
        if item["name"] == "datasource"
    )
    assert variable["current"]["value"] == source["uid"]
    assert variable["current"]["text"] == source["name"]


def test_dashboard_provider_reads_mounted_folder() -> None:
    (provider,) = providers()
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT


def test_dashboard_provider_rejects_ui_updates() -> None:
    (provider,) = providers()
    assert provider["allowUiUpdates"] is False
