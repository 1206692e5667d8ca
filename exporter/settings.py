"""The exporter's settings, from command-line flags and the environment.

Every flag also reads ``WARDEN_EXPORTER_`` plus the flag's name in upper
case, with dots and dashes as underscores: ``--web.listen-address`` reads
``WARDEN_EXPORTER_WEB_LISTEN_ADDRESS``. A flag on the command line wins
over the environment. Invalid values end the program with status 2 and a
message that names the flag and what it accepts.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.collector import INFO_LABELS, allowlist_label_name

ENV_PREFIX = "WARDEN_EXPORTER_"
SOURCES = ("auto", "cgroup", "api")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")
DOCKER_SCHEMES = ("unix://", "tcp://", "http://", "https://", "ssh://", "npipe://")

# Shortest CPU sample interval accepted, in seconds.
MIN_SAMPLE_INTERVAL = 0.1
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# Docker accepts almost any label key, so this rejects only what cannot be
# one here: whitespace, "=" and the list separator.
_LABEL_KEY = re.compile(r"^[^\s,=]+$")


class SettingsError(ValueError):
    """A flag or environment variable has an invalid value."""


@dataclass(frozen=True)
class Settings:
    """The validated settings of one exporter process."""

    listen_host: str
    listen_port: int
    telemetry_path: str
    docker_host: str | None
    docker_timeout: float
    cgroup_root: str
    proc_root: str
    source: str
    label_allowlist: tuple[str, ...]
    resync_interval: float
    cpu_sample_interval: float
    log_level: str
    log_format: str

    @property
    def listen_address(self) -> str:
        """Return the listen address as given, with IPv6 hosts in brackets."""
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"


def env_name(flag: str) -> str:
    """Return the environment variable that sets ``flag``."""
    return ENV_PREFIX + re.sub(r"[.-]", "_", flag.lstrip("-")).upper()


def parse_listen_address(text: str) -> tuple[str, int]:
    """Split ``host:port``, ``:port`` or ``[v6]:port`` into host and port."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise SettingsError(f"{text!r} is not host:port; use for example :9648")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise SettingsError(f"port {port} is outside 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise SettingsError(f"{text!r}: write an IPv6 host in brackets, as [::1]:9648")
    return host, port


def parse_duration(text: str) -> float:
    """Parse a duration such as ``60s``, ``1.5m``, ``500ms`` or ``60`` (seconds)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise SettingsError(
            f"{text!r} is not a duration; use a number with ms, s, m or h, as 60s"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise SettingsError(f"{text!r} must be longer than 0")
    return seconds


def parse_sample_interval(text: str) -> float:
    """Parse the CPU sample interval: a duration of at least 100ms, or 0 for off."""
    match = _DURATION.match(text.strip())
    if match is not None and float(match.group(1)) == 0:
        return 0.0
    try:
        seconds = parse_duration(text)
    except SettingsError:
        raise SettingsError(
            f"{text!r} is not a duration; use a number with ms, s, m or h, as "
            "1s, or 0 to turn the sampler off"
        ) from None
    if seconds < MIN_SAMPLE_INTERVAL:
        raise SettingsError(
            f"{text!r} is shorter than 100ms; the sampler would read every "
            "container's counter more often than a scrape can use, so use 1s "
            "or 0 to turn it off"
        )
    return seconds


def parse_telemetry_path(text: str) -> str:
    """Check that the metrics path is absolute and not taken by another page."""
    if not text.startswith("/") or text in ("/", "/healthz"):
        raise SettingsError(
            f"{text!r} must start with / and differ from / and /healthz, as /metrics"
        )
    return text


def parse_docker_host(text: str) -> str:
    """Check that the engine address has a scheme the Docker SDK accepts."""
    if not text.startswith(DOCKER_SCHEMES):
        raise SettingsError(
            f"{text!r} has no known scheme; use one of {', '.join(DOCKER_SCHEMES)}"
        )
    return text


def parse_label_allowlist(text: str) -> tuple[str, ...]:
    """Split a comma-separated list of container label keys and check them."""
    labels = tuple(item.strip() for item in text.split(",") if item.strip())
    seen: dict[str, str] = {}
    for label in labels:
        if _LABEL_KEY.match(label) is None:
            raise SettingsError(f"label key {label!r} contains whitespace or '='")
        name = allowlist_label_name(label)
        if name in seen:
            raise SettingsError(
                f"labels {seen[name]!r} and {label!r} both become {name}; "
                "keep one of them"
            )
        if name in INFO_LABELS:
            raise SettingsError(f"label {label!r} clashes with {name}")
        seen[name] = label
    return labels


def _choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise SettingsError(f"{text!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _path(text: str) -> str:
    if not text:
        raise SettingsError("the path is empty; give a folder such as /proc")
    return text


# Each entry is (flag, default, parser, help). A default of None leaves the
# value to the code that uses it, as --docker.host does.
_FLAGS: list[tuple[str, str | None, Callable[[str], Any], str]] = [
    (
        "--web.listen-address",
        ":9648",
        parse_listen_address,
        "address to serve metrics on, host:port; an empty host means all interfaces",
    ),
    (
        "--web.telemetry-path",
        "/metrics",
        parse_telemetry_path,
        "path under which to serve metrics",
    ),
    (
        "--docker.host",
        None,
        parse_docker_host,
        "Docker engine address (default: $DOCKER_HOST, else the local socket "
        "unix:///var/run/docker.sock)",
    ),
    (
        "--docker.timeout",
        "10s",
        parse_duration,
        "time to wait for a reply of the Docker API",
    ),
    (
        "--cgroup.root",
        "/sys/fs/cgroup",
        _path,
        "mount point of the cgroup file systems",
    ),
    ("--proc.root", "/proc", _path, "mount point of the host's proc file system"),
    (
        "--source",
        "auto",
        _choice(SOURCES),
        "where to read resource use: cgroup files, the Docker stats API, or "
        "auto (cgroup files when readable, else the API)",
    ),
    (
        "--label-allowlist",
        "",
        parse_label_allowlist,
        "comma-separated container labels to copy onto docker_container_info "
        "as label_<name>; container environment variables are never exported",
    ),
    (
        "--discovery.resync-interval",
        "60s",
        parse_duration,
        "time between two full lists of containers, which heal missed events",
    ),
    (
        "--cpu.sample-interval",
        "1s",
        parse_sample_interval,
        "time between two background reads of every container's CPU counter, "
        "between which utilization is measured; 0 measures between scrapes "
        "instead, as the stats API source always does",
    ),
    ("--log.level", "info", _choice(LOG_LEVELS), "least severe level to log"),
    ("--log.format", "logfmt", _choice(LOG_FORMATS), "format of log lines"),
]


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser; defaults and variables show in --help."""
    parser = argparse.ArgumentParser(
        prog="warden-exporter",
        description="Prometheus exporter of per-container CPU, memory and PID "
        "metrics read from cgroup files, with the Docker stats API as fallback.",
    )
    for flag, default, _, help_text in _FLAGS:
        shown = "" if default is None else f" (default: {default!r})"
        parser.add_argument(
            flag,
            dest=_dest(flag),
            metavar=flag.rsplit(".", 1)[-1].lstrip("-").upper().replace("-", "_"),
            default=None,
            help=f"{help_text}{shown}; env {env_name(flag)}",
        )
    return parser


def _dest(flag: str) -> str:
    return re.sub(r"[.-]", "_", flag.lstrip("-"))


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from flags, then the environment, then defaults.

    An invalid value exits with status 2 through ``argparse``.
    """
    environ = os.environ if environ is None else environ
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    for flag, default, parse, _ in _FLAGS:
        dest = _dest(flag)
        variable = env_name(flag)
        if given[dest] is not None:
            text, origin = given[dest], f"argument {flag}"
        elif variable in environ:
            text, origin = environ[variable], f"{variable} (for {flag})"
        elif default is not None:
            text, origin = default, f"default of {flag}"
        else:
            values[dest] = None
            continue
        try:
            values[dest] = parse(text)
        except SettingsError as error:
            parser.error(f"{origin}: invalid value: {error}")
    host, port = values["web_listen_address"]
    return Settings(
        listen_host=host,
        listen_port=port,
        telemetry_path=values["web_telemetry_path"],
        docker_host=values["docker_host"],
        docker_timeout=values["docker_timeout"],
        cgroup_root=values["cgroup_root"],
        proc_root=values["proc_root"],
        source=values["source"],
        label_allowlist=values["label_allowlist"],
        resync_interval=values["discovery_resync_interval"],
        cpu_sample_interval=values["cpu_sample_interval"],
        log_level=values["log_level"],
        log_format=values["log_format"],
    )
