"""Command line of the enforcer: serve the webhook, or verify an audit log.

``warden-enforcer [FLAGS]`` serves the webhook. ``warden-enforcer
verify-audit PATH`` checks the hash chain of an audit log. It exits 0 when
the chain is intact, 1 when it is broken and 2 when PATH is missing or is
not a regular file.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from flask import Flask
from prometheus_client import CollectorRegistry

from enforcer.app import create_app
from enforcer.audit import AuditError, AuditLog, verify_chain
from enforcer.docker_api import EngineDocker
from enforcer.flags import DEFAULT_AUDIT_PATH
from enforcer.logs import configure_logging
from enforcer.server import EnforcerServer
from enforcer.settings import Settings, SettingsError, load_settings

logger = logging.getLogger(__name__)

EXIT_INVALID = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "verify-audit":
        return verify_audit(args[1:])

    try:
        settings = load_settings(args)
    except SettingsError as error:
        print(f"warden-enforcer: {error}", file=sys.stderr)
        return EXIT_INVALID
    configure_logging(settings.log_level, settings.log_format)
    for warning in settings.warnings:
        logger.warning("%s", warning)

    try:
        # Fail at start, not on the first alert; the worker opens its own.
        probe = AuditLog(settings.audit_path)
        probe.check_writable()
        probe.close()
    except AuditError as error:
        print(
            f"warden-enforcer: invalid --audit.path: {error}; choose a writable file",
            file=sys.stderr,
        )
        return EXIT_INVALID

    if settings.token is None:
        logger.warning(
            "no --webhook.token-file: /webhook and /events accept requests "
            "without a token from %s",
            settings.listen_address,
        )
    logger.info(
        "starting enforcer: listen=%s tls=%s audit=%s dry_run=%s "
        "max_actions_per_minute=%d stop_grace_seconds=%g",
        settings.listen_address,
        settings.tls,
        settings.audit_path,
        settings.dry_run,
        settings.max_actions_per_minute,
        settings.stop_grace_seconds,
    )
    EnforcerServer(lambda: build_app(settings), settings).run()
    logger.info("enforcer stopped")
    return 0


def build_app(settings: Settings) -> Flask:
    """Build the app with a real Docker client and the configured audit log."""
    docker = EngineDocker(base_url=settings.docker_host)
    audit = AuditLog(settings.audit_path)
    return create_app(settings, docker, audit, CollectorRegistry())


def verify_audit(args: Sequence[str]) -> int:
    """Check an audit log's hash chain and print the outcome."""
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: warden-enforcer verify-audit PATH", file=sys.stderr)
        return EXIT_INVALID
    path = Path(args[0])
    if path.is_dir():
        problem = "is a directory"
    elif not path.exists():
        problem = "not found"
    elif not path.is_file():
        problem = "is not a regular file"
    else:
        problem = ""
    if problem:
        print(
            f"warden-enforcer: audit log {str(path)!r} {problem}; expected the "
            "JSON lines file that --audit.path names, such as "
            f"{DEFAULT_AUDIT_PATH}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    # verify_chain reports a read failure as a broken result, never raises.
    result = verify_chain(path)
    if result.ok:
        print(f"{path}: {result.lines} records, hash chain intact")
        return 0
    print(
        f"{path}: hash chain broken at line {result.first_broken_line} of "
        f"{result.lines}: {result.reason}"
    )
    return 1
