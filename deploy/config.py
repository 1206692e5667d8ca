"""Settings of the local stack and the Prometheus and Alertmanager configs.

The stack reads its settings from flags and ``WARDEN_STACK_*`` environment
variables, writes every generated file into the state folder and checks the
configs with ``promtool`` and ``amtool`` before any process starts.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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

    @property
    def token_path(self) -> Path:
        return self.state / "token"

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


def settings_from_environment(
    environ: Mapping[str, str] | None = None, **overrides: Any
) -> StackSettings:
    """Build stack settings from ``WARDEN_*`` variables and keyword overrides.

    Raises:
        StackConfigError: a port is not a number in 1-65535 or the name
            filter is not a valid regular expression.
    """
    environ = os.environ if environ is None else environ
    state = Path(environ.get("WARDEN_STATE") or REPOSITORY_ROOT / ".warden")
    ports = {}
    for part, default in DEFAULT_PORTS.items():
        variable = f"WARDEN_STACK_{part.upper()}_PORT"
        ports[part] = parse_port(environ.get(variable, str(default)), variable)
    values: dict[str, Any] = {
        "state": state.resolve(),
        "ports": ports,
        "name_regex": environ.get("WARDEN_CONTAINER_NAME_REGEX", ""),
        "dry_run": environ.get("WARDEN_STACK_DRY_RUN", "").lower()
        in ("1", "true", "yes"),
    }
    values.update({key: value for key, value in overrides.items() if value})
    if overrides.get("ports"):
        values["ports"] = {**ports, **overrides["ports"]}
    settings = StackSettings(**values)
    validate_name_regex(settings.name_regex)
    return settings


def parse_port(text: str, source: str) -> int:
    """Parse a TCP port number, naming ``source`` when it is invalid."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise StackConfigError(
            f"{source}={text!r} is not a TCP port; expected a number in 1-65535"
        )
    return port


def validate_name_regex(regex: str) -> None:
    """Reject a name filter that Python or Prometheus (RE2) cannot compile."""
    try:
        re.compile(regex)
    except re.error as error:
        raise StackConfigError(
            f"WARDEN_CONTAINER_NAME_REGEX={regex!r} is not a valid regular "
            f"expression ({error}); give a pattern such as '^sandbox-'"
        ) from None
    # Look-arounds and back-references are Python only, and Prometheus would
    # reject the config much later with a less helpful message.
    if re.search(r"\(\?[=!<]|\\[1-9]", regex):
        raise StackConfigError(
            f"WARDEN_CONTAINER_NAME_REGEX={regex!r} uses a look-around or a "
            "back-reference, which Prometheus (RE2) does not support; "
            "write it without them"
        )


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


def prometheus_config(settings: StackSettings) -> dict[str, Any]:
    """Build the Prometheus config of the local stack."""
    interval = duration(settings.scrape_interval_seconds)
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
                {"static_configs": [{"targets": [settings.address("alertmanager")]}]}
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


def write_token(path: Path) -> str:
    """Write a fresh random webhook token readable by its owner only."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    # Create with mode 0600, so the token is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token


def read_token(state: Path) -> str:
    """Read the webhook token that ``make up`` wrote into the state folder."""
    path = state / "token"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise StackConfigError(
            f"token file {path} not found; start the stack with `make up` first "
            "or set WARDEN_STATE to the state folder of a running stack"
        ) from None


def write_configs(settings: StackSettings, fresh_token: bool) -> None:
    """Write both configs and the token into the state folder.

    With ``fresh_token`` false an existing token is kept, so that rewriting
    the configs does not lock out a stack that is running.
    """
    settings.state.mkdir(parents=True, exist_ok=True)
    if fresh_token or not settings.token_path.exists():
        write_token(settings.token_path)
    for path, config in (
        (settings.prometheus_config_path, prometheus_config(settings)),
        (settings.alertmanager_config_path, alertmanager_config(settings)),
    ):
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        logger.info("wrote %s", path)


def check_configs(settings: StackSettings) -> None:
    """Check both configs with promtool and amtool.

    Raises:
        StackConfigError: a tool is missing or rejects its config.
    """
    checks = (
        ("promtool", ["check", "config", str(settings.prometheus_config_path)]),
        ("amtool", ["check-config", str(settings.alertmanager_config_path)]),
    )
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
