"""Settings of the local stack and the Prometheus and Alertmanager configs.

``deploy.options`` builds the settings from flags and ``WARDEN_*``
variables. This module writes every generated file into the state folder
and checks the configs with ``promtool`` and ``amtool`` before any process
starts.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.credentials import (
    ALERTMANAGER_USER,
    StackCredentials,
    write_alertmanager_credentials,
    write_token,
)

logger = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES_FOLDER = REPOSITORY_ROOT / "alerts"

# Prometheus job names, fixed because the alert rules and the dashboard
# select series by them.
EXPORTER_JOB = "warden-exporter"
ENFORCER_JOB = "warden-enforcer"

# Alerts with this label ask for enforcement, and only they reach the
# enforcer's webhook.
ACTIONS = ("kill", "stop", "pause")

DEFAULT_PORTS = {
    "exporter": 9648,
    "enforcer": 9649,
    "prometheus": 9090,
    "alertmanager": 9093,
}


class StackConfigError(Exception):
    """A stack setting or a generated config is invalid."""


@dataclass(frozen=True)
class StackSettings:
    """State folder, ports, intervals and name filter of the local stack."""

    state: Path
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    # A regular expression searched in container names, as re.search does;
    # empty guards every container.
    name_regex: str = ""
    scrape_interval_seconds: float = 5.0
    evaluation_interval_seconds: float = 5.0
    # Rule files loaded by Prometheus: the committed rules unless a test or
    # a benchmark renders its own.
    rule_files: Sequence[Path] = ()
    # Seconds Alertmanager waits before it sends a group again when new
    # alerts joined it.
    group_interval_seconds: float = 10.0
    dry_run: bool = False
    # Extra flags for the enforcer, as ``--flag=value`` strings.
    enforcer_flags: Sequence[str] = ()
    # Host names by which Prometheus and Alertmanager reach each part; a part
    # not listed is reached on 127.0.0.1. Compose uses its service names.
    hosts: Mapping[str, str] = field(default_factory=dict)
    # The token file as Alertmanager sees it, when that differs from
    # ``token_path`` (a Compose secret, for example).
    webhook_token_file: Path | None = None
    # Whether Alertmanager requires a password. Compose turns it off and
    # publishes no Alertmanager port instead.
    alertmanager_auth: bool = True
    # Whether the stack links the rule files under names that make
    # Prometheus evaluate the enforcement rules just after it scrapes the
    # exporter (deploy/phase.py).
    align_evaluations: bool = True

    @property
    def credentials(self) -> StackCredentials:
        return StackCredentials(self.state)

    @property
    def token_path(self) -> Path:
        return self.credentials.token_path

    @property
    def audit_path(self) -> Path:
        return self.state / "audit.jsonl"

    @property
    def prometheus_config_path(self) -> Path:
        return self.state / "prometheus.yml"

    @property
    def alertmanager_config_path(self) -> Path:
        return self.state / "alertmanager.yml"

    def address(self, part: str) -> str:
        """Return the host:port by which the other parts reach ``part``."""
        return f"{self.hosts.get(part, '127.0.0.1')}:{self.ports[part]}"

    def url(self, part: str) -> str:
        """Return the base URL by which the other parts reach ``part``."""
        return f"http://{self.address(part)}"


def name_matches(settings: StackSettings, name: str) -> bool:
    """Tell whether the stack guards a container of this name."""
    return re.search(settings.name_regex, name) is not None


def duration(seconds: float) -> str:
    """Format seconds as a Prometheus duration such as ``5s`` or ``500ms``."""
    milliseconds = round(seconds * 1000)
    if milliseconds <= 0:
        raise StackConfigError(
            f"interval {seconds!r} s is not positive; expected at least 1 ms"
        )
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"


def name_filter_relabeling(name_regex: str) -> list[dict[str, Any]]:
    """Return metric relabel rules that drop container series of other names.

    Prometheus anchors relabel regexes at both ends, so the pattern is wrapped
    in ``.*`` to search the name the way ``re.search`` does. A temporary label
    marks the matching series, and series of every other metric, the
    exporter's own included, pass untouched.
    """
    if not name_regex:
        return []
    return [
        {
            "source_labels": ["name"],
            "regex": f".*(?:{name_regex}).*",
            "target_label": "__tmp_warden_guarded",
            "replacement": "true",
            "action": "replace",
        },
        {
            "source_labels": ["__name__", "__tmp_warden_guarded"],
            "regex": "docker_container_.*;",
            "action": "drop",
        },
        {"regex": "__tmp_warden_guarded", "action": "labeldrop"},
    ]


def alertmanager_client(settings: StackSettings) -> dict[str, Any]:
    """Return how Prometheus logs in to Alertmanager, empty without a password."""
    if not settings.alertmanager_auth:
        return {}
    return {
        "basic_auth": {
            "username": ALERTMANAGER_USER,
            "password_file": str(settings.credentials.password_path),
        }
    }


def prometheus_config(settings: StackSettings) -> dict[str, Any]:
    """Build the Prometheus config of the local stack."""
    interval = duration(settings.scrape_interval_seconds)
    login = alertmanager_client(settings)
    exporter_job: dict[str, Any] = {
        "job_name": EXPORTER_JOB,
        "static_configs": [{"targets": [settings.address("exporter")]}],
    }
    relabeling = name_filter_relabeling(settings.name_regex)
    if relabeling:
        exporter_job["metric_relabel_configs"] = relabeling
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": duration(settings.evaluation_interval_seconds),
        },
        "rule_files": [str(path) for path in settings.rule_files],
        "alerting": {
            "alertmanagers": [
                {
                    **login,
                    "static_configs": [{"targets": [settings.address("alertmanager")]}],
                }
            ]
        },
        "scrape_configs": [
            exporter_job,
            {
                "job_name": ENFORCER_JOB,
                "static_configs": [{"targets": [settings.address("enforcer")]}],
            },
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [settings.address("prometheus")]}],
            },
            {
                "job_name": "alertmanager",
                **login,
                "static_configs": [{"targets": [settings.address("alertmanager")]}],
            },
        ],
    }


def alertmanager_config(settings: StackSettings) -> dict[str, Any]:
    """Build the Alertmanager config: enforcement alerts go to the webhook.

    Each alert is its own group (``group_by: ['...']``) and is sent at once,
    so one container's alert never waits for another's. Resolved alerts are
    not sent, because the enforcer has nothing to do for them. Every other
    alert goes to a receiver with no integrations, which drops it.
    """
    return {
        "route": {
            "receiver": "discard",
            "group_by": ["alertname"],
            "routes": [
                {
                    "receiver": "warden-enforcer",
                    "matchers": [f'action=~"{"|".join(ACTIONS)}"'],
                    "group_by": ["..."],
                    "group_wait": "0s",
                    "group_interval": duration(settings.group_interval_seconds),
                    # The enforcer records a repeat as a duplicate and does
                    # not act again, so a repeat covers a lost notification.
                    "repeat_interval": "5m",
                }
            ],
        },
        "receivers": [
            {"name": "discard"},
            {
                "name": "warden-enforcer",
                "webhook_configs": [
                    {
                        "url": f"{settings.url('enforcer')}/webhook",
                        "send_resolved": False,
                        "max_alerts": 0,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(
                                    settings.webhook_token_file or settings.token_path
                                ),
                            }
                        },
                    }
                ],
            },
        ],
    }


def write_configs(settings: StackSettings, fresh_token: bool) -> None:
    """Write both configs, the token and the password into the state folder.

    With ``fresh_token`` false an existing token and password are kept, so
    that rewriting the configs does not lock out a stack that is running.
    """
    settings.state.mkdir(parents=True, exist_ok=True)
    credentials = settings.credentials
    if fresh_token or not credentials.token_path.exists():
        write_token(credentials.token_path)
    if settings.alertmanager_auth and (
        fresh_token or not credentials.password_path.exists()
    ):
        write_alertmanager_credentials(credentials)
    write_prometheus_config(settings)
    path = settings.alertmanager_config_path
    path.write_text(yaml.safe_dump(alertmanager_config(settings), sort_keys=False))
    logger.info("wrote %s", path)


def write_prometheus_config(settings: StackSettings) -> None:
    """Write the Prometheus config alone, for example to change its rule files."""
    path = settings.prometheus_config_path
    path.write_text(yaml.safe_dump(prometheus_config(settings), sort_keys=False))
    logger.info("wrote %s", path)


def check_configs(settings: StackSettings) -> None:
    """Check both configs with promtool and amtool.

    Raises:
        StackConfigError: a tool is missing or rejects its config.
    """
    checks = [
        ("promtool", ["check", "config", str(settings.prometheus_config_path)]),
        ("amtool", ["check-config", str(settings.alertmanager_config_path)]),
    ]
    if settings.alertmanager_auth:
        web_config = str(settings.credentials.web_config_path)
        checks.append(("promtool", ["check", "web-config", web_config]))
    for tool, arguments in checks:
        binary = shutil.which(tool)
        if binary is None:
            raise StackConfigError(
                f"{tool} not found on PATH; run deploy/setup.sh to install it"
            )
        result = subprocess.run(
            [binary, *arguments], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise StackConfigError(
                f"{tool} {' '.join(arguments)} failed:\n{result.stdout}{result.stderr}"
            )
        logger.debug("%s accepted %s", tool, arguments[-1])
