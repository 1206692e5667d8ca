"""The summary that `make up` prints once the stack is healthy."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from deploy.config import StackSettings
from deploy.credentials import ALERTMANAGER_USER


def describe_rule_file(path: Path) -> str:
    """Return the path, followed by the file it links to when it is a link."""
    if path.is_symlink():
        return f"{path} -> {path.resolve()}"
    return str(path)


def print_summary(settings: StackSettings, rule_files: Sequence[Path]) -> None:
    """Print where each part listens and where its files are."""
    guarded = settings.name_regex or "(every container)"
    lines = [
        "Warden is running. Press Ctrl-C to stop.",
        f"  exporter      {settings.url('exporter')}/metrics",
        f"  enforcer      {settings.url('enforcer')}/events (bearer token)",
        f"  prometheus    {settings.url('prometheus')}/alerts",
        f"  alertmanager  {settings.url('alertmanager')} (user "
        f"{ALERTMANAGER_USER}, password in {settings.credentials.password_path})",
        f"  audit log     {settings.audit_path}",
        f"  token         {settings.token_path}",
        f"  logs          {settings.state}/<part>.log",
        f"  rules         {', '.join(describe_rule_file(p) for p in rule_files)}",
        f"  guarding      container names matching {guarded}",
    ]
    if settings.dry_run:
        lines.append("  dry run       decisions are recorded, no container is touched")
    # The exporter and the enforcer read their own WARDEN_* variables from
    # the environment they inherit; only names are shown, since one may hold
    # a secret.
    inherited = sorted(
        name
        for name in os.environ
        if name.startswith(("WARDEN_EXPORTER_", "WARDEN_ENFORCER_"))
    )
    if inherited:
        lines.append(f"  environment   {', '.join(inherited)} (set for the parts)")
    print("\n".join(lines), flush=True)
