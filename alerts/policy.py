"""Load and validate the runtime policy that the alert rules are made from.

The policy file (``alerts/policy.yml``) is the one place where thresholds,
``for`` durations, actions, intervals and job names are set. Every value is
checked here, so the renderer can trust what it gets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yml")

VIOLATIONS = ("cpu_spike", "memory_spike", "fork_bomb", "combined_anomaly")
ACTIONS = ("kill", "stop", "pause", "none")

# Keys of each violation besides ``for`` and ``action``: the thresholds.
THRESHOLD_KEYS = {
    "cpu_spike": ("threshold",),
    "memory_spike": ("threshold",),
    "fork_bomb": ("threshold",),
    "combined_anomaly": ("cpu_threshold", "memory_threshold"),
}

TOP_LEVEL_KEYS = (
    "scrape_interval",
    "evaluation_interval",
    "rate_window",
    "health_for",
    "runbook_url",
    "jobs",
    "violations",
)
JOB_KEYS = ("exporter", "enforcer")

# Prometheus duration units (model.ParseDuration), largest first.
_UNIT_MS = {
    "y": 365 * 24 * 3600 * 1000,
    "w": 7 * 24 * 3600 * 1000,
    "d": 24 * 3600 * 1000,
    "h": 3600 * 1000,
    "m": 60 * 1000,
    "s": 1000,
    "ms": 1,
}
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?"
    r"(?:(\d+)ms)?$"
)
_JOB_NAME = re.compile(r"^[^\"\\\n]+$")


class PolicyError(ValueError):
    """The policy is invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class Duration:
    """A Prometheus duration, kept in milliseconds."""

    milliseconds: int

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse a Prometheus duration such as ``1m30s`` or ``0s``."""
        match = _DURATION.match(text)
        if not text or match is None:
            raise ValueError(text)
        total = 0
        for unit, amount in zip(_UNIT_MS, match.groups(), strict=True):
            if amount is not None:
                total += int(amount) * _UNIT_MS[unit]
        return cls(total)

    @property
    def seconds(self) -> float:
        return self.milliseconds / 1000

    def __str__(self) -> str:
        """Format as Prometheus does, for example ``1m30s``, ``500ms``, ``0s``."""
        if self.milliseconds == 0:
            return "0s"
        rest = self.milliseconds
        parts = []
        for unit, size in _UNIT_MS.items():
            amount, rest = divmod(rest, size)
            if amount:
                parts.append(f"{amount}{unit}")
        return "".join(parts)

    def __mul__(self, factor: int) -> Duration:
        return Duration(self.milliseconds * factor)


@dataclass(frozen=True)
class ViolationPolicy:
    """The thresholds, ``for`` duration and action of one violation."""

    name: str
    thresholds: Mapping[str, float]
    for_: Duration
    action: str

    @property
    def enforced(self) -> bool:
        return self.action != "none"


@dataclass(frozen=True)
class Policy:
    """The whole validated policy."""

    scrape_interval: Duration
    evaluation_interval: Duration
    rate_window: Duration
    health_for: Duration
    runbook_url: str
    exporter_job: str
    enforcer_job: str
    violations: Mapping[str, ViolationPolicy]


def load_policy(
    path: str | Path = DEFAULT_POLICY_PATH, overrides: Sequence[str] = ()
) -> Policy:
    """Read a policy file, apply ``KEY=VALUE`` overrides and validate it.

    A key names a value by its dotted path, for example
    ``violations.cpu_spike.for=2s`` or ``scrape_interval=1s``; the value is
    read as YAML.

    Raises:
        PolicyError: the file cannot be read, or a value is invalid.
    """
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PolicyError(
            f"cannot read policy file {path}: {error.strerror}; "
            "pass an existing file with --policy"
        ) from error
    except yaml.YAMLError as error:
        raise PolicyError(f"policy file {path} is not valid YAML: {error}") from error
    if not isinstance(document, dict):
        raise PolicyError(
            f"policy file {path} must contain a mapping of keys, "
            f"got {type(document).__name__}"
        )
    for override in overrides:
        apply_override(document, override)
    policy = parse_policy(document)
    logger.debug("loaded policy %s with %d overrides", path, len(overrides))
    return policy


def apply_override(document: dict[str, Any], override: str) -> None:
    """Set the value at a dotted key of a policy document, in place."""
    key, separator, text = override.partition("=")
    if not separator or not key:
        raise PolicyError(
            f"override {override!r} is invalid: expected KEY=VALUE, "
            "for example violations.cpu_spike.for=2s"
        )
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(
            f"override {key}: value {text!r} is not valid YAML"
        ) from error

    node = document
    *parents, leaf = key.split(".")
    for depth, part in enumerate(parents):
        child = node.get(part)
        if not isinstance(child, dict):
            prefix = ".".join(parents[: depth + 1])
            raise PolicyError(
                f"override {key}: {prefix} is not a mapping in the policy; "
                "use a key that exists in policy.yml"
            )
        node = child
    node[leaf] = value


def parse_policy(document: Mapping[str, Any]) -> Policy:
    """Validate a policy document (the parsed YAML) and build a Policy."""
    _reject_unknown_keys(document, TOP_LEVEL_KEYS, "")
    scrape = _duration(document, "scrape_interval", positive=True)
    evaluation = _duration(document, "evaluation_interval", positive=True)
    if evaluation.milliseconds < scrape.milliseconds:
        # Two evaluations could then see the same sample, so one spike would
        # pass for two consecutive checks.
        raise PolicyError(
            f"evaluation_interval: {evaluation} is shorter than scrape_interval "
            f"{scrape}; set it to at least the scrape interval"
        )
    rate_window = _duration(document, "rate_window", positive=True)
    if rate_window.milliseconds < 4 * scrape.milliseconds:
        raise PolicyError(
            f"rate_window: {rate_window} contains fewer than four scrapes of "
            f"{scrape}; set it to at least {scrape * 4}"
        )
    health_for = _duration(document, "health_for", positive=False)

    runbook_url = _require(document, "runbook_url", "")
    if not isinstance(runbook_url, str) or not runbook_url or "#" in runbook_url:
        raise PolicyError(
            f"runbook_url: {runbook_url!r} is invalid; expected the address of "
            "the runbook without an anchor, for example docs/runbook.md"
        )

    jobs = _mapping(document, "jobs", "")
    _reject_unknown_keys(jobs, JOB_KEYS, "jobs.")
    exporter_job = _job(jobs, "exporter")
    enforcer_job = _job(jobs, "enforcer")

    violations = _mapping(document, "violations", "")
    _reject_unknown_keys(violations, VIOLATIONS, "violations.")
    parsed = {name: _violation(violations, name) for name in VIOLATIONS}

    return Policy(
        scrape_interval=scrape,
        evaluation_interval=evaluation,
        rate_window=rate_window,
        health_for=health_for,
        runbook_url=runbook_url,
        exporter_job=exporter_job,
        enforcer_job=enforcer_job,
        violations=parsed,
    )


def _violation(violations: Mapping[str, Any], name: str) -> ViolationPolicy:
    prefix = f"violations.{name}."
    entry = _mapping(violations, name, "violations.")
    threshold_keys = THRESHOLD_KEYS[name]
    _reject_unknown_keys(entry, (*threshold_keys, "for", "action"), prefix)

    thresholds = {}
    for key in threshold_keys:
        value = _require(entry, key, prefix)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PolicyError(
                f"{prefix}{key}: {value!r} is not a number; "
                "expected a ratio in (0, 1], for example 0.95"
            )
        if not 0 < value <= 1:
            raise PolicyError(
                f"{prefix}{key}: {value} is outside (0, 1]; "
                "expected a ratio of the limit, for example 0.95"
            )
        thresholds[key] = float(value)

    action = _require(entry, "action", prefix)
    if action not in ACTIONS:
        raise PolicyError(
            f"{prefix}action: {action!r} is unknown; "
            f"expected one of {', '.join(ACTIONS)}"
        )
    return ViolationPolicy(
        name=name,
        thresholds=thresholds,
        for_=_duration(entry, "for", positive=False, prefix=prefix),
        action=action,
    )


def _require(mapping: Mapping[str, Any], key: str, prefix: str) -> Any:
    if key not in mapping:
        raise PolicyError(f"{prefix}{key} is missing; add it to the policy")
    return mapping[key]


def _mapping(mapping: Mapping[str, Any], key: str, prefix: str) -> Mapping[str, Any]:
    value = _require(mapping, key, prefix)
    if not isinstance(value, dict):
        raise PolicyError(f"{prefix}{key}: expected a mapping of keys, got {value!r}")
    return value


def _reject_unknown_keys(
    mapping: Mapping[str, Any], known: Sequence[str], prefix: str
) -> None:
    for key in mapping:
        if key not in known:
            raise PolicyError(
                f"{prefix}{key} is an unknown key; expected one of {', '.join(known)}"
            )


def _duration(
    mapping: Mapping[str, Any], key: str, *, positive: bool, prefix: str = ""
) -> Duration:
    value = _require(mapping, key, prefix)
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        duration = Duration.parse(value)
    except ValueError:
        raise PolicyError(
            f"{prefix}{key}: {value!r} is not a Prometheus duration; "
            "expected a value such as 15s, 1m30s or 0s"
        ) from None
    if positive and duration.milliseconds == 0:
        raise PolicyError(f"{prefix}{key}: must be longer than 0s, got {value}")
    return duration


def _job(jobs: Mapping[str, Any], key: str) -> str:
    value = _require(jobs, key, "jobs.")
    if not isinstance(value, str) or not _JOB_NAME.match(value):
        raise PolicyError(
            f"jobs.{key}: {value!r} is not a valid job name; expected the "
            "job_name of the Prometheus scrape config, without quotes"
        )
    return value
