"""Panels of the dashboard, grouped by the question each section answers.

Containers near their limits, what the enforcer did, and whether the
exporter and the enforcer are healthy. The CPU, memory and PID panels draw
the policy's thresholds, taken from alerts/policy.yml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.policy import Policy
from grafana.panels import row, stat, table, target, timeseries


@dataclass(frozen=True)
class PolicyLevels:
    """Thresholds of the policy alerts, as ratios of a container's limit."""

    cpu: float
    memory: float
    pids: float
    combined_cpu: float
    combined_memory: float

    @classmethod
    def from_policy(cls, policy: Policy) -> PolicyLevels:
        """Take the levels of the four violations from a loaded policy."""
        violations = policy.violations
        combined = violations["combined_anomaly"].thresholds
        return cls(
            cpu=violations["cpu_spike"].thresholds["threshold"],
            memory=violations["memory_spike"].thresholds["threshold"],
            pids=violations["fork_bomb"].thresholds["threshold"],
            combined_cpu=combined["cpu_threshold"],
            combined_memory=combined["memory_threshold"],
        )


# Label matchers that the instance and name variables fill in. The enforcer's
# series have no container and a different instance, so they take neither.
CONTAINER = 'instance=~"$instance", name=~"$name"'
EXPORTER = 'instance=~"$instance"'
ENFORCED_RESULTS = 'result=~"killed|stopped|paused"'

# One row per container and violation while the enforcer's count of real
# actions rises. That counter carries no container, so the container comes
# from its policy alert: one that fired within the window and has stopped
# firing, because a killed or stopped container loses its series. A
# container whose alert of the same violation resolved on its own in the
# same window is listed too. A paused container keeps its series, so only
# a pause for cpu_spike, whose alert resolves as the CPU use drops, shows.
FIRING_POLICY_ALERTS = (
    f'ALERTS{{alertstate="firing", action=~"kill|stop|pause", {CONTAINER}}}'
)
ACTED_ON_CONTAINERS = (
    "max by (name, id, instance, violation, action) (\n"
    f"  max_over_time({FIRING_POLICY_ALERTS}[$__rate_interval])\n"
    f"  unless {FIRING_POLICY_ALERTS}\n"
    ")\n"
    "and on (violation, action)\n"
    "(\n"
    "  sum by (violation, action) (\n"
    f"    increase(warden_enforcer_actions_total{{{ENFORCED_RESULTS}}}"
    "[$__rate_interval])\n"
    "  ) > 0\n"
    ")"
)


def container_panels(levels: PolicyLevels) -> list[dict[str, Any]]:
    """Build the panels of containers close to their limits."""
    return [
        row("Containers near their limits", y=0),
        timeseries(
            "CPU use of limit",
            "CPU time used per second divided by the container's CPU limit "
            "(quota, cpuset or host CPUs). Dashed lines are the policy's "
            "levels: cpu_spike, and the CPU half of combined_anomaly.",
            [
                target(
                    f"warden:container_cpu_utilization:ratio{{{CONTAINER}}}",
                    "{{name}}",
                )
            ],
            unit="percentunit",
            grid=(0, 1, 12, 8),
            thresholds=[levels.combined_cpu, levels.cpu],
        ),
        timeseries(
            "Memory working set of limit",
            "Working set (usage minus inactive page cache) divided by the "
            "memory limit, or by host memory when the container has none. "
            "Dashed lines are the memory_spike level and the memory half of "
            "combined_anomaly.",
            [
                target(
                    f"warden:container_memory_working_set:ratio{{{CONTAINER}}}",
                    "{{name}}",
                )
            ],
            unit="percentunit",
            grid=(12, 1, 12, 8),
            thresholds=[levels.combined_memory, levels.memory],
        ),
        timeseries(
            "PIDs of limit",
            "Tasks (processes and threads) in the container divided by its "
            "pids limit, or the host's limit when it has none. The dashed "
            "line is the fork_bomb level.",
            [target(f"warden:container_pids:ratio{{{CONTAINER}}}", "{{name}}")],
            unit="percentunit",
            grid=(0, 9, 12, 8),
            thresholds=[levels.pids],
        ),
        timeseries(
            "Memory working set and limit",
            "Working set in bytes, solid, against the effective memory "
            "limit, dashed, per container.",
            [
                target(
                    f"docker_container_memory_working_set_bytes{{{CONTAINER}}}",
                    "{{name}}",
                ),
                target(
                    f"docker_container_memory_limit_bytes{{{CONTAINER}}}",
                    "{{name}} limit",
                    ref_id="B",
                ),
            ],
            unit="bytes",
            grid=(12, 9, 12, 8),
            dashed_series=" limit$",
        ),
        timeseries(
            "Kernel OOM kills",
            "Processes killed by the kernel OOM killer inside each "
            "container's memory cgroup. Warden's own kills are not counted.",
            [
                target(
                    "increase(docker_container_memory_oom_kills_total"
                    f"{{{CONTAINER}}}[$__rate_interval])",
                    "{{name}}",
                )
            ],
            unit="short",
            grid=(0, 17, 12, 8),
            bars=True,
        ),
        table(
            "Containers firing a policy alert",
            "Policy alerts firing now, with the action the enforcer is asked "
            "to take (empty for a violation the policy only warns about). A "
            "container stays listed until its alert resolves, one rule "
            "evaluation after its series are gone.",
            target(
                f'ALERTS{{alertstate="firing", violation!="", {CONTAINER}}}',
                instant=True,
            ),
            columns=["alertname", "name", "violation", "action", "instance", "id"],
            grid=(12, 17, 12, 8),
        ),
    ]


def enforcement_panels() -> list[dict[str, Any]]:
    """Build the panels of what the enforcer did."""
    return [
        row("Enforcement", y=25),
        timeseries(
            "Enforcement decisions",
            "Decisions per second by result and violation: killed, stopped "
            "and paused are actions; skipped_*, duplicate, not_found, "
            "rate_limited and error are alerts the enforcer did not act on.",
            [
                target(
                    "sum by (result, violation) (rate("
                    "warden_enforcer_actions_total[$__rate_interval]))",
                    "{{violation}} {{result}}",
                )
            ],
            unit="ops",
            grid=(0, 26, 8, 8),
            bars=True,
        ),
        table(
            "Latest decisions",
            "The last time each kind of decision was seen in the time range, "
            "newest first.",
            target(
                "sum by (action, violation, result) (increase("
                "warden_enforcer_actions_total[$__rate_interval])) > 0",
                table_range=True,
            ),
            columns=["action", "violation", "result"],
            grid=(8, 26, 8, 8),
            group_last_time=True,
        ),
        table(
            "Containers acted on",
            "Containers whose policy alert stopped firing while the enforcer "
            "killed, stopped or paused for that violation, newest first. The "
            "enforcer's counters carry no container, so a container whose "
            "alert of the same violation resolved on its own at that moment "
            "is listed too; the enforcer's audit log has the exact record.",
            target(ACTED_ON_CONTAINERS, table_range=True),
            columns=["name", "violation", "action", "instance", "id"],
            grid=(16, 26, 8, 8),
            group_last_time=True,
        ),
    ]


def health_panels() -> list[dict[str, Any]]:
    """Build the panels of the exporter's and the enforcer's own health."""
    return [
        row("Guard health", y=34),
        stat(
            "Scrape targets up",
            "1 when Prometheus scraped the exporter or the enforcer at the "
            "last attempt.",
            [
                target(
                    'up{job=~"warden-exporter|warden-enforcer"}',
                    "{{job}} {{instance}}",
                )
            ],
            grid=(0, 35, 6, 4),
            up_down=True,
        ),
        stat(
            "Docker API up",
            "1 when the Docker API answered the exporter's last collection "
            "or the enforcer's last check.",
            [
                target(
                    f"warden_exporter_docker_up{{{EXPORTER}}}",
                    "exporter {{instance}}",
                ),
                target(
                    "warden_enforcer_docker_up", "enforcer {{instance}}", ref_id="B"
                ),
            ],
            grid=(6, 35, 6, 4),
            up_down=True,
        ),
        stat(
            "Containers seen",
            "Containers the exporter found in its last collection.",
            [target(f"warden_exporter_containers{{{EXPORTER}}}", "{{instance}}")],
            grid=(12, 35, 6, 4),
        ),
        stat(
            "Audit log write errors",
            "Failures to check or write the audit log in the last rate "
            "interval. The enforcer decides nothing it cannot audit and "
            "answers such a webhook with a 5xx, so Alertmanager retries.",
            [
                target(
                    "sum(increase(warden_enforcer_audit_errors_total"
                    "[$__rate_interval]))",
                    "audit errors",
                )
            ],
            grid=(18, 35, 6, 4),
            red_above_zero=True,
        ),
        timeseries(
            "Exporter collection time",
            "Time the exporter's last collection of all containers took. It "
            "grows with the number of containers and jumps when the exporter "
            "falls back to the Docker stats API.",
            [
                target(
                    f"warden_exporter_collect_duration_seconds{{{EXPORTER}}}",
                    "{{instance}}",
                )
            ],
            unit="s",
            grid=(0, 39, 12, 8),
        ),
        timeseries(
            "Exporter read errors",
            "Failed reads per second by kind (cgroup_read, cgroup_parse, "
            "stats_parse and others). A container gone between listing and "
            "reading is not an error.",
            [
                target(
                    "sum by (instance, kind) (rate(warden_exporter_errors_total"
                    f"{{{EXPORTER}}}[$__rate_interval]))",
                    "{{kind}} {{instance}}",
                )
            ],
            unit="ops",
            grid=(12, 39, 12, 8),
        ),
        timeseries(
            "Enforcer webhook requests",
            "Requests per second by HTTP status code: 2xx processed, 4xx "
            "rejected (Alertmanager does not retry), 5xx not decided "
            "(Alertmanager retries).",
            [
                target(
                    "sum by (code) (rate(warden_enforcer_requests_total"
                    "[$__rate_interval]))",
                    "{{code}}",
                )
            ],
            unit="reqps",
            grid=(0, 47, 12, 8),
        ),
        timeseries(
            "Enforcer action latency",
            "Quantiles of the time from webhook request to the result of "
            "each action, estimated from the histogram's buckets. Gaps mean "
            "that no action was taken in the rate interval.",
            [
                target(
                    f"histogram_quantile({quantile}, sum by (le) (rate("
                    "warden_enforcer_action_duration_seconds_bucket"
                    "[$__rate_interval])))",
                    f"p{round(quantile * 100)}",
                    ref_id=ref_id,
                )
                for quantile, ref_id in ((0.5, "A"), (0.9, "B"), (0.99, "C"))
            ],
            unit="s",
            grid=(12, 47, 12, 8),
        ),
    ]
