"""Build single Prometheus rules as plain mappings, ready for YAML."""

from __future__ import annotations

from typing import Any

from alerts.policy import Duration, Policy

Rule = dict[str, Any]


def recording_rule(record: str, expr: str) -> Rule:
    """Return a recording rule."""
    return {"record": record, "expr": expr}


def alert_rule(
    policy: Policy,
    *,
    name: str,
    expr: str,
    for_: Duration,
    labels: dict[str, str],
    summary: str,
    description: str,
) -> Rule:
    """Return an alerting rule whose runbook_url links to the alert's section."""
    rule: Rule = {"alert": name, "expr": expr}
    if for_.milliseconds:
        rule["for"] = str(for_)
    rule["labels"] = labels
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": runbook_link(policy, name),
    }
    return rule


def runbook_link(policy: Policy, alert: str) -> str:
    """Return the runbook address of an alert's section.

    The anchor is the alert name in lower case, which is the anchor GitHub
    and most Markdown renderers give a heading that is exactly that name.
    """
    return f"{policy.runbook_url}#{runbook_anchor(alert)}"


def runbook_anchor(alert: str) -> str:
    """Return the anchor of an alert's section in the runbook."""
    return alert.lower()


def selector(
    metric: str, job: str, regex: dict[str, str] | None = None, **matchers: str
) -> str:
    """Return ``metric{job="...", ...}`` with exact and ``regex`` matchers."""
    parts = [f'job="{job}"']
    parts += [f'{key}="{value}"' for key, value in matchers.items()]
    parts += [f'{key}=~"{value}"' for key, value in (regex or {}).items()]
    return f"{metric}{{{', '.join(parts)}}}"


def format_ratio(value: float) -> str:
    """Return a threshold as PromQL reads it, for example ``0.95``."""
    return repr(value)


def format_percent(value: float) -> str:
    """Return a threshold as a percentage for annotations, for example ``95%``."""
    return f"{value * 100:g}%"


def query_value(query: str, pipeline: str) -> str:
    """Return a template that runs a per-container query and formats its value.

    ``query`` is a printf format with two ``%q`` verbs, filled with the
    alert's ``id`` and ``instance`` labels.
    """
    return (
        f'{{{{ with printf "{query}" $labels.id $labels.instance | query }}}}'
        f"{{{{ . | first | value | {pipeline} }}}}{{{{ end }}}}"
    )
