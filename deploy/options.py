"""Flags and ``WARDEN_*`` variables of the local stack, checked in one place.

Every value is checked before anything is written or started: a bad one
exits with status 2 and a message that names the flag or variable and what
it accepts.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from alerts.policy import Duration
from deploy.config import (
    DEFAULT_PORTS,
    DEFAULT_RULES_FOLDER,
    REPOSITORY_ROOT,
    StackConfigError,
    StackSettings,
)

logger = logging.getLogger(__name__)

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


def parse_bool(text: str, source: str) -> bool:
    """Parse true/false, 1/0 or yes/no in any case, naming ``source`` if not."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise StackConfigError(
        f"{source}={text!r} is not a boolean; expected one of "
        f"{', '.join(TRUE_WORDS + FALSE_WORDS)}"
    )


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


def parse_interval(text: str, source: str) -> float:
    """Parse an interval in seconds of at least 1 ms, naming ``source`` if not."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0.001):
        raise StackConfigError(
            f"{source}={text!r} is not an interval; expected a number of "
            "seconds of at least 0.001, such as 5 or 0.5"
        )
    return seconds


# Python syntax that Prometheus' RE2 rejects: look-arounds, back-references,
# atomic groups, conditionals and \Z (RE2 has only \z, which Python lacks).
RE2_UNSUPPORTED = re.compile(r"\(\?[=!<>]|\(\?P=|\(\?\(|\\[1-9]|\\Z")
# RE2 rejects a repetition count above 1000.
RE2_MAX_REPEAT = 1000
REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def validate_name_regex(regex: str) -> None:
    """Reject a name filter that Python or Prometheus (RE2) cannot compile."""
    name = f"name filter {regex!r} (--name-regex, WARDEN_CONTAINER_NAME_REGEX)"
    try:
        re.compile(regex)
    except re.error as error:
        raise StackConfigError(
            f"{name} is not a valid regular expression ({error}); give a "
            "pattern such as '^sandbox-'"
        ) from None
    # Prometheus would reject these much later, in promtool's check of the
    # generated config, with a message that does not name the setting.
    if RE2_UNSUPPORTED.search(regex):
        raise StackConfigError(
            f"{name} uses a look-around, a back-reference, an atomic group, a "
            "conditional or \\Z, which Prometheus (RE2) does not support; "
            "write it without them (use $ for the end of the name)"
        )
    for match in REPEAT.finditer(regex):
        counts = [int(count) for count in match.groups() if count]
        if max(counts) > RE2_MAX_REPEAT:
            raise StackConfigError(
                f"{name} repeats {match.group()}, more than the "
                f"{RE2_MAX_REPEAT} that Prometheus (RE2) allows; use a "
                "smaller count"
            )


def validate_ports(ports: Mapping[str, int]) -> None:
    """Reject two parts given the same port."""
    owners: dict[int, str] = {}
    for part, port in ports.items():
        if port in owners:
            raise StackConfigError(
                f"--{owners[port]}-port and --{part}-port are both {port}; "
                "give each part its own port (flags or "
                "WARDEN_STACK_<PART>_PORT variables)"
            )
        owners[port] = part


def rule_intervals(path: Path) -> dict[str, float]:
    """Return the evaluation interval in seconds of each group that sets one."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise StackConfigError(
            f"--rules={path} cannot be read as a rule file ({error}); give a "
            "rule file rendered by `warden-alerts`"
        ) from None
    groups = document.get("groups") if isinstance(document, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise StackConfigError(
            f"--rules={path} is not a Prometheus rule file: expected a mapping "
            "with a list of `groups`; give a rule file rendered by `warden-alerts`"
        )
    intervals = {}
    for group in groups:
        if "interval" in group:
            try:
                interval = Duration.parse(str(group["interval"]))
            except ValueError:
                raise StackConfigError(
                    f"group {group.get('name')!r} in {path} has interval "
                    f"{group['interval']!r}, which is not a Prometheus duration"
                ) from None
            intervals[str(group.get("name"))] = interval.seconds
    return intervals


def validate_interval(seconds: float, rule_files: Sequence[Path]) -> None:
    """Reject a scrape interval other than the interval the rules are for.

    The rendered policy fixes its groups' evaluation interval, and its rate
    windows and ``for`` durations count scrapes of that interval.
    """
    for path in rule_files:
        for group, interval in rule_intervals(path).items():
            if not math.isclose(interval, seconds):
                raise StackConfigError(
                    f"--scrape-interval={seconds:g} does not match the "
                    f"{interval:g} s interval of rule group {group!r} in "
                    f"{path}; pass --scrape-interval={interval:g}, or render "
                    f"rules for it with `warden-alerts --set "
                    f"scrape_interval={seconds:g}s --set "
                    f"evaluation_interval={seconds:g}s --output FILE` and "
                    "pass --rules=FILE"
                )


def validate_state(state: Path) -> None:
    """Reject a state folder, or its rules/ subfolder, that is not a folder."""
    if state.exists() and not state.is_dir():
        raise StackConfigError(
            f"state folder {state} exists and is not a folder; pass --state "
            "(WARDEN_STATE) with a folder, or remove the file"
        )
    rules = state / "rules"
    if rules.exists() and not rules.is_dir():
        raise StackConfigError(
            f"{rules} is not a folder, but the stack keeps its rule file "
            "links there; remove it"
        )


def validate_settings(settings: StackSettings) -> None:
    """Raise StackConfigError when any value of ``settings`` is invalid."""
    validate_state(settings.state)
    validate_name_regex(settings.name_regex)
    validate_ports(settings.ports)
    for part, port in settings.ports.items():
        parse_port(str(port), f"--{part}-port")
    parse_interval(str(settings.scrape_interval_seconds), "--scrape-interval")
    validate_interval(settings.scrape_interval_seconds, settings.rule_files)


def settings_from_environment(
    environ: Mapping[str, str] | None = None, **overrides: Any
) -> StackSettings:
    """Build and check stack settings from ``WARDEN_*`` variables and overrides.

    An override of None leaves the variable's value, or the default.

    Raises:
        StackConfigError: a value is invalid; the message names it.
    """
    environ = os.environ if environ is None else environ
    state = Path(environ.get("WARDEN_STATE") or REPOSITORY_ROOT / ".warden")
    ports = {}
    for part, default in DEFAULT_PORTS.items():
        variable = f"WARDEN_STACK_{part.upper()}_PORT"
        ports[part] = parse_port(environ.get(variable, str(default)), variable)
    dry_run = environ.get("WARDEN_STACK_DRY_RUN", "")
    values: dict[str, Any] = {
        "state": state.resolve(),
        "ports": ports,
        "name_regex": environ.get("WARDEN_CONTAINER_NAME_REGEX", ""),
        "dry_run": parse_bool(dry_run, "WARDEN_STACK_DRY_RUN") if dry_run else False,
    }
    values.update({key: value for key, value in overrides.items() if value is not None})
    values["ports"] = {**ports, **(overrides.get("ports") or {})}
    settings = StackSettings(**values)
    validate_settings(settings)
    return settings


def committed_rule_files(folder: Path = DEFAULT_RULES_FOLDER) -> list[Path]:
    """Return the Prometheus rule file rendered from the committed policy."""
    path = folder / "rules.yml"
    if not path.exists():
        raise StackConfigError(
            f"rule file {path} not found; render it from the policy with "
            "`warden-alerts`, or pass --rules"
        )
    return [path]


def argument_type(parse: Any, flag: str) -> Any:
    """Wrap a parser of this module as an argparse type for ``flag``."""

    def convert(text: str) -> Any:
        try:
            return parse(text, flag)
        except StackConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the stack's commands and flags."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.stack",
        description="Run Warden's exporter, enforcer, Prometheus and "
        "Alertmanager on 127.0.0.1. Each flag defaults to the environment "
        "variable named in its help.",
    )
    parser.add_argument(
        "command",
        choices=["up", "config"],
        help="up: run the stack until Ctrl-C; config: write and check the configs only",
    )
    parser.add_argument(
        "--state", type=Path, help="state folder (WARDEN_STATE, default .warden/)"
    )
    for part, default in DEFAULT_PORTS.items():
        parser.add_argument(
            f"--{part}-port",
            type=argument_type(parse_port, f"--{part}-port"),
            help=f"{part} port on 127.0.0.1, 1-65535 "
            f"(WARDEN_STACK_{part.upper()}_PORT, default {default})",
        )
    parser.add_argument(
        "--name-regex",
        help="guard only containers whose name matches this regular "
        "expression (WARDEN_CONTAINER_NAME_REGEX, default every container)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        action="append",
        help="Prometheus rule file to load instead of alerts/rules.yml; repeatable",
    )
    parser.add_argument(
        "--scrape-interval",
        type=argument_type(parse_interval, "--scrape-interval"),
        default=5.0,
        help="seconds between scrapes and between rule evaluations; must equal "
        "the interval of every rule group (default 5, as alerts/rules.yml)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="record decisions but touch no container (WARDEN_STACK_DRY_RUN: "
        "true/false, 1/0 or yes/no)",
    )
    return parser


def settings_from_arguments(arguments: argparse.Namespace) -> StackSettings:
    """Combine the flags with the environment into checked stack settings."""
    ports = {
        part: getattr(arguments, f"{part}_port")
        for part in DEFAULT_PORTS
        if getattr(arguments, f"{part}_port") is not None
    }
    return settings_from_environment(
        state=arguments.state.resolve() if arguments.state else None,
        ports=ports,
        name_regex=arguments.name_regex,
        # Resolved here, against the working folder: Prometheus would read a
        # relative path against the state folder, and a link in the state
        # folder's rules/ is replaced at each start.
        rule_files=[path.resolve() for path in arguments.rules]
        if arguments.rules
        else committed_rule_files(),
        scrape_interval_seconds=arguments.scrape_interval,
        evaluation_interval_seconds=arguments.scrape_interval,
        dry_run=arguments.dry_run,
    )
