"""The per-container rules: utilization ratios and the enforcement alerts.

Recording rules and alerts sit in one group, so that at every evaluation
each alert reads the ratios recorded a moment earlier at the same
timestamp rather than those of the previous evaluation.
"""

from __future__ import annotations

from alerts.policy import Duration, Policy, ViolationPolicy
from alerts.rule import (
    Rule,
    alert_rule,
    format_percent,
    format_ratio,
    query_value,
    recording_rule,
    selector,
)

CPU_RATIO = "warden:container_cpu_utilization:ratio"
MEMORY_RATIO = "warden:container_memory_working_set:ratio"
PIDS_RATIO = "warden:container_pids:ratio"

# Labels every ratio keeps: the container's and the scrape target's.
SERIES_LABELS = "id, name, instance, job"

ALERT_NAMES = {
    "cpu_spike": "ContainerCPUSpike",
    "memory_spike": "ContainerMemorySpike",
    "fork_bomb": "ContainerForkBomb",
    "combined_anomaly": "ContainerCombinedAnomaly",
}

_CONTAINER = "{{ $labels.name }}"
_WHERE = "{{ $labels.name }} ({{ $labels.id }}) on {{ $labels.instance }}"


def container_rules(policy: Policy) -> list[Rule]:
    """Return the recording rules followed by the enforcement alerts."""
    return [
        *ratio_rules(policy),
        _cpu_spike(policy, policy.violations["cpu_spike"]),
        _memory_spike(policy, policy.violations["memory_spike"]),
        _fork_bomb(policy, policy.violations["fork_bomb"]),
        _combined_anomaly(policy, policy.violations["combined_anomaly"]),
    ]


def ratio_rules(policy: Policy) -> list[Rule]:
    """Return the recording rules of the CPU, memory and PID ratios."""
    job = policy.exporter_job

    def per_container(metric: str, condition: str = "") -> str:
        return f"max by ({SERIES_LABELS}) ({selector(metric, job)}{condition})"

    # The exporter's CPU gauge covers the time between its two latest reads,
    # so unlike rate() it adds no window to the detection time. A limit of
    # 0 would divide into +Inf, so such series are left out.
    return [
        recording_rule(
            CPU_RATIO, per_container("docker_container_cpu_utilization_ratio")
        ),
        recording_rule(
            MEMORY_RATIO,
            per_container("docker_container_memory_working_set_bytes")
            + "\n/\n"
            + per_container("docker_container_memory_limit_bytes", " > 0"),
        ),
        recording_rule(
            PIDS_RATIO,
            per_container("docker_container_pids")
            + "\n/\n"
            + per_container("docker_container_pids_limit", " > 0"),
        ),
    ]


def rendered_for(policy: Policy, violation: ViolationPolicy) -> Duration:
    """Return the rule's ``for``: at least one evaluation interval.

    Prometheus fires a rule with ``for: 0s`` at the first evaluation that
    matches, so one spike in one scrape would be acted on. With ``for``
    of one evaluation interval the condition has to hold at two
    consecutive evaluations, which see two different scrapes because the
    policy forbids evaluating more often than scraping.
    """
    floor = policy.evaluation_interval.milliseconds
    return Duration(max(violation.for_.milliseconds, floor))


def enforcement_labels(violation: ViolationPolicy) -> dict[str, str]:
    """Return the label contract of an enforcement alert."""
    labels = {"severity": "critical", "violation": violation.name}
    if violation.enforced:
        labels["action"] = violation.action
    return labels


def _unprotected(policy: Policy, condition: str) -> str:
    """Return the condition limited to containers listed as not protected.

    The result matches only where a ``docker_container_info`` series with
    ``protected="false"`` has the same ``id`` and ``instance`` and its
    latest sample is less than two scrape intervals old, and ``and`` keeps
    the labels and value of the condition. A positive match is required
    because a recorded ratio can outlive the exporter's series. If
    Prometheus stops after the scrape that marks a container's series stale
    and before the next evaluation, the last ratio stays visible for
    ``--query.lookback-delta`` (default 5m) after the restart.

    The age bound covers the info series itself: Prometheus writes no
    staleness markers when it shuts down, so after a restart the last info
    sample of a container removed meanwhile stays visible for the lookback
    too. Two scrape intervals tolerate one missed scrape. An older sample
    is taken as that of a series that has ended, so two missed scrapes in a
    row also suspend enforcement until the next scrape. The bound is
    rendered in seconds from the policy's ``scrape_interval``, 10 for the
    default 5s.
    """
    unprotected = selector(
        "docker_container_info", policy.exporter_job, protected="false"
    )
    bound = _format_seconds(policy.scrape_interval * 2)
    fresh = f"time() - timestamp({unprotected}) < {bound}"
    return f"(\n{_indent(condition)}\n)\nand on (id, instance)\n(\n{_indent(fresh)}\n)"


def _format_seconds(duration: Duration) -> str:
    """Return a duration as a PromQL number of seconds, for example ``10``."""
    return f"{duration.seconds:g}"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _enforcement_alert(
    policy: Policy,
    violation: ViolationPolicy,
    *,
    condition: str,
    summary: str,
    description: str,
) -> Rule:
    return alert_rule(
        policy,
        name=ALERT_NAMES[violation.name],
        expr=_unprotected(policy, condition),
        for_=rendered_for(policy, violation),
        labels=enforcement_labels(violation),
        summary=summary,
        description=description,
    )


def _action_text(violation: ViolationPolicy) -> str:
    if violation.enforced:
        return f"The policy action is {violation.action}."
    return "The policy only warns."


def _cpu_spike(policy: Policy, violation: ViolationPolicy) -> Rule:
    threshold = violation.thresholds["threshold"]
    return _enforcement_alert(
        policy,
        violation,
        condition=f"{CPU_RATIO} > {format_ratio(threshold)}",
        summary=(
            f"Container {_CONTAINER} uses more than {format_percent(threshold)} "
            "of its CPU limit."
        ),
        description=(
            f"Container {_WHERE} uses {{{{ $value | humanizePercentage }}}} of "
            f"its CPU limit, above {format_percent(threshold)} for at least "
            f"{rendered_for(policy, violation)}. {_action_text(violation)}"
        ),
    )


def _memory_spike(policy: Policy, violation: ViolationPolicy) -> Rule:
    threshold = violation.thresholds["threshold"]
    duration = rendered_for(policy, violation)
    working_set = query_value(
        "docker_container_memory_working_set_bytes{id=%q, instance=%q}",
        "humanize1024",
    )
    limit = query_value(
        "docker_container_memory_limit_bytes{id=%q, instance=%q}", "humanize1024"
    )
    return _enforcement_alert(
        policy,
        violation,
        condition=f"{MEMORY_RATIO} > {format_ratio(threshold)}",
        summary=(
            f"Container {_CONTAINER} uses more than {format_percent(threshold)} "
            "of its memory limit."
        ),
        description=(
            f"Container {_WHERE} has a working set of {working_set}B out of "
            f"{limit}B ({{{{ $value | humanizePercentage }}}}), above "
            f"{format_percent(threshold)} for at least {duration}. "
            f"{_action_text(violation)}"
        ),
    )


def _fork_bomb(policy: Policy, violation: ViolationPolicy) -> Rule:
    threshold = violation.thresholds["threshold"]
    pids = query_value("docker_container_pids{id=%q, instance=%q}", "humanize")
    limit = query_value("docker_container_pids_limit{id=%q, instance=%q}", "humanize")
    return _enforcement_alert(
        policy,
        violation,
        condition=f"{PIDS_RATIO} > {format_ratio(threshold)}",
        summary=(
            f"Container {_CONTAINER} runs more than {format_percent(threshold)} "
            "of its task limit."
        ),
        description=(
            f"Container {_WHERE} runs {pids} tasks out of a limit of {limit} "
            f"({{{{ $value | humanizePercentage }}}}), above "
            f"{format_percent(threshold)}. {_action_text(violation)}"
        ),
    )


def _combined_anomaly(policy: Policy, violation: ViolationPolicy) -> Rule:
    cpu = violation.thresholds["cpu_threshold"]
    memory = violation.thresholds["memory_threshold"]
    memory_ratio = query_value(
        MEMORY_RATIO + "{id=%q, instance=%q}", "humanizePercentage"
    )
    condition = (
        f"{CPU_RATIO} > {format_ratio(cpu)}\n"
        "and on (id, instance)\n"
        f"{MEMORY_RATIO} > {format_ratio(memory)}"
    )
    return _enforcement_alert(
        policy,
        violation,
        condition=condition,
        summary=(
            f"Container {_CONTAINER} uses more than {format_percent(cpu)} of its "
            f"CPU and {format_percent(memory)} of its memory limit."
        ),
        description=(
            f"Container {_WHERE} uses {{{{ $value | humanizePercentage }}}} of "
            f"its CPU limit and {memory_ratio} of its memory limit at once. "
            f"{_action_text(violation)}"
        ),
    )
