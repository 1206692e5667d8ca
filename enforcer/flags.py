"""The enforcer's command-line flags, their variables and the argparse parser.

Every flag also reads from ``WARDEN_ENFORCER_`` plus the flag in upper case
with dots and dashes as underscores: ``--web.listen-address`` is
``WARDEN_ENFORCER_WEB_LISTEN_ADDRESS``.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

ENV_PREFIX = "WARDEN_ENFORCER_"
DEFAULT_LISTEN_ADDRESS = "127.0.0.1:9649"
DEFAULT_AUDIT_PATH = "warden-audit.jsonl"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")


def env_name(flag: str) -> str:
    """Return the environment variable that sets ``flag``."""
    return ENV_PREFIX + re.sub(r"[.\-]", "_", flag.lstrip("-")).upper()


@dataclass(frozen=True)
class Flag:
    """One command-line flag: its name, argparse destination and help."""

    name: str
    dest: str
    help: str
    default: str | None = None
    metavar: str | None = None


FLAGS = (
    Flag(
        "--web.listen-address",
        "listen_address",
        "host:port to listen on; beyond loopback a token file is required",
        DEFAULT_LISTEN_ADDRESS,
        "HOST:PORT",
    ),
    Flag(
        "--webhook.token-file",
        "token_file",
        "file with the bearer token that /webhook and /events require",
        metavar="PATH",
    ),
    Flag(
        "--audit.path",
        "audit_path",
        "append-only JSON lines file of every decision",
        DEFAULT_AUDIT_PATH,
        "PATH",
    ),
    Flag(
        "--docker.host",
        "docker_host",
        "Docker API address such as unix:///var/run/docker.sock "
        "(default: DOCKER_HOST, else the local socket)",
        metavar="URL",
    ),
    Flag("--dry-run", "dry_run", "decide and record, but never act on a container"),
    Flag(
        "--protect",
        "protect",
        "container name or label selector key=value never acted on; "
        "repeatable or comma-separated (the warden.protect=true label always "
        "protects)",
        metavar="NAME|KEY=VALUE",
    ),
    Flag(
        "--guard.name-regex",
        "guard_name_regex",
        "Python regular expression searched (re.search) in a container's name; "
        "containers whose name does not match are never acted on "
        "(default: every container)",
        metavar="REGEX",
    ),
    Flag(
        "--actions.max-per-minute",
        "max_actions_per_minute",
        "actions allowed in any sliding minute; the rest are rate_limited",
        "10",
        "N",
    ),
    Flag(
        "--stop.grace-period",
        "stop_grace_period",
        "time between SIGTERM and SIGKILL for action=stop (e.g. 10s, 500ms)",
        "10s",
        "DURATION",
    ),
    Flag(
        "--web.tls-cert-file",
        "tls_cert_file",
        "PEM certificate to serve HTTPS (needs --web.tls-key-file)",
        metavar="PATH",
    ),
    Flag(
        "--web.tls-key-file",
        "tls_key_file",
        "PEM private key of --web.tls-cert-file",
        metavar="PATH",
    ),
    Flag(
        "--web.max-body-bytes",
        "max_body_bytes",
        "largest request body accepted (bytes, or with KiB/MiB); larger ones get 413",
        str(DEFAULT_MAX_BODY_BYTES),
        "SIZE",
    ),
    Flag(
        "--log.level", "log_level", "one of " + ", ".join(LOG_LEVELS), "info", "LEVEL"
    ),
    Flag(
        "--log.format",
        "log_format",
        "one of " + ", ".join(LOG_FORMATS),
        "logfmt",
        "FORMAT",
    ),
)
# The flag of each argparse destination.
FLAG_NAMES = {flag.dest: flag.name for flag in FLAGS}


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the enforcer's flags, defaults shown in --help."""
    parser = argparse.ArgumentParser(
        prog="warden-enforcer",
        description=(
            "Receive Alertmanager webhooks and kill, stop or pause the "
            "containers they name. Every flag also reads from "
            "WARDEN_ENFORCER_<FLAG> (upper case, dots and dashes as "
            "underscores). Run 'warden-enforcer verify-audit PATH' to check "
            "an audit log's hash chain."
        ),
        allow_abbrev=False,
    )
    for flag in FLAGS:
        if flag.dest == "dry_run":
            parser.add_argument(
                flag.name, dest=flag.dest, action="store_true", help=flag.help
            )
            continue
        # Show only defaults that exist: "(default: None)" gives no information.
        text = (
            flag.help if flag.default is None else flag.help + " (default: %(default)s)"
        )
        parser.add_argument(
            flag.name,
            dest=flag.dest,
            default=flag.default,
            metavar=flag.metavar,
            help=text,
            action="append" if flag.dest == "protect" else "store",
        )
    return parser
