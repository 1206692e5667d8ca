"""The enforcer's own metrics, on a registry that the app owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The result each action gives when Docker carries it out.
ACTION_RESULTS = {"kill": "killed", "stop": "stopped", "pause": "paused"}

# Label values come from alert labels, which anyone who can reach
# Alertmanager can set. Values outside these sets are counted as "other" so
# that a stream of odd alerts cannot grow the number of series without end.
KNOWN_ACTIONS = frozenset(ACTION_RESULTS)
KNOWN_VIOLATIONS = frozenset(
    {"cpu_spike", "memory_spike", "fork_bomb", "combined_anomaly"}
)
OTHER = "other"

# Results published at 0 from the start for every known action and every
# violation, "other" included, beside the result each action gives on
# success. increase()
# needs a sample before the first event of a series, so the alert rules on
# these results and the dashboard's tables would miss the first one of each
# label set otherwise. Skipped and duplicate decisions appear on first use.
PUBLISHED_RESULTS = ("dry_run", "error", "rate_limited")

# Status codes the app sends, published at 0 from the start for the same
# reason: the alert rule on 4xx and 5xx responses uses increase().
PUBLISHED_CODES = ("200", "400", "401", "404", "405", "413", "415", "500", "503")


class EnforcerMetrics:
    """Counters and gauges of webhook requests, decisions and dependencies."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "warden_enforcer_actions_total",
            "Decisions on alerts, by requested action, violation and result.",
            ["action", "violation", "result"],
            registry=registry,
        )
        self.action_duration = Histogram(
            "warden_enforcer_action_duration_seconds",
            "Time from receiving a webhook request to the result of an action.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.requests = Counter(
            "warden_enforcer_requests_total",
            "HTTP responses sent, by status code.",
            ["code"],
            registry=registry,
        )
        self.audit_errors = Counter(
            "warden_enforcer_audit_errors_total",
            "Failures to check or write the audit log.",
            registry=registry,
        )
        self.docker_up = Gauge(
            "warden_enforcer_docker_up",
            "1 when the Docker API responded to the last call, else 0.",
            registry=registry,
        )
        self.truncated_alerts = Counter(
            "warden_enforcer_truncated_alerts_total",
            "Alerts that Alertmanager left out of notifications (max_alerts).",
            registry=registry,
        )
        self._publish_at_zero()

    def _publish_at_zero(self) -> None:
        for action, acted in ACTION_RESULTS.items():
            for violation in (*sorted(KNOWN_VIOLATIONS), OTHER):
                for result in (acted, *PUBLISHED_RESULTS):
                    self.actions.labels(
                        action=action, violation=violation, result=result
                    )
        for code in PUBLISHED_CODES:
            self.requests.labels(code=code)

    def count_decision(self, action: str, violation: str, result: str) -> None:
        """Count one decision, folding unknown label values into "other"."""
        self.actions.labels(
            action=action if action in KNOWN_ACTIONS else OTHER,
            violation=violation if violation in KNOWN_VIOLATIONS else OTHER,
            result=result,
        ).inc()
