"""The four processes of the local stack: their command lines, ports and checks.

``process_specs`` turns the stack's settings into one ``ProcessSpec`` per
part, in order of start; ``deploy.stack`` starts and stops them.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from deploy.config import StackConfigError, StackSettings
from deploy.credentials import (
    basic_auth_header,
    read_alertmanager_password,
)
from deploy.processes import ProcessSpec


def executable(name: str) -> str:
    """Return the path of a console script of this environment, or of PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise StackConfigError(
            f"{name} not found beside {sys.executable} or on PATH; "
            "run deploy/setup.sh to install it"
        )
    return found


def alertmanager_web_flags(settings: StackSettings) -> list[str]:
    """Return Alertmanager's flag for its web config, which requires a password."""
    if not settings.alertmanager_auth:
        return []
    return [f"--web.config.file={settings.credentials.web_config_path}"]


def alertmanager_headers(settings: StackSettings) -> Callable[[], dict[str, str]]:
    """Return a function giving the headers of Alertmanager's health check.

    The password is read when the check runs, because each start writes a
    new one.
    """

    def headers() -> dict[str, str]:
        if not settings.alertmanager_auth:
            return {}
        password = read_alertmanager_password(settings.state)
        return {"Authorization": basic_auth_header(password)}

    return headers


def process_specs(settings: StackSettings) -> list[ProcessSpec]:
    """Describe the four processes of the stack, in order of start."""
    state = settings.state
    ports = settings.ports
    enforcer_argv = [
        executable("warden-enforcer"),
        f"--web.listen-address=127.0.0.1:{ports['enforcer']}",
        f"--webhook.token-file={settings.token_path}",
        f"--audit.path={settings.audit_path}",
        *settings.enforcer_flags,
    ]
    # The enforcer checks the name filter again, so that an alert that did
    # not come from the filtered metrics (one posted to Alertmanager's API,
    # say) cannot reach a container outside it.
    if settings.name_regex:
        enforcer_argv.append(f"--guard.name-regex={settings.name_regex}")
    if settings.dry_run:
        enforcer_argv.append("--dry-run")
    return [
        ProcessSpec(
            name="exporter",
            argv=[
                executable("warden-exporter"),
                f"--web.listen-address=127.0.0.1:{ports['exporter']}",
            ],
            port=ports["exporter"],
            health_path="/healthz",
            port_setting="WARDEN_STACK_EXPORTER_PORT",
        ),
        ProcessSpec(
            name="enforcer",
            argv=enforcer_argv,
            port=ports["enforcer"],
            health_path="/readyz",
            port_setting="WARDEN_STACK_ENFORCER_PORT",
        ),
        ProcessSpec(
            name="alertmanager",
            argv=[
                executable("prometheus-alertmanager"),
                f"--config.file={settings.alertmanager_config_path}",
                f"--storage.path={state / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",
                *alertmanager_web_flags(settings),
            ],
            port=ports["alertmanager"],
            health_path="/-/ready",
            health_headers=alertmanager_headers(settings),
            port_setting="WARDEN_STACK_ALERTMANAGER_PORT",
        ),
        ProcessSpec(
            name="prometheus",
            argv=[
                executable("prometheus"),
                f"--config.file={settings.prometheus_config_path}",
                f"--storage.tsdb.path={state / 'prometheus-data'}",
                # No --web.enable-lifecycle: nothing here reloads or stops
                # Prometheus over HTTP, and /-/quit needs no password.
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
            port=ports["prometheus"],
            health_path="/-/ready",
            port_setting="WARDEN_STACK_PROMETHEUS_PORT",
        ),
    ]
