"""Alerts for people: the guard itself is down, failing or acting.

None of these rules sets an ``action`` label, so the enforcer never acts
on them.
"""

from __future__ import annotations

from alerts.policy import Duration, Policy
from alerts.rule import Rule, alert_rule, selector

NO_DELAY = Duration(0)

# Results of warden_enforcer_actions_total that changed a container.
ACTED_RESULTS = "killed|stopped|paused"


def health_rules(policy: Policy) -> list[Rule]:
    """Return the alerts about the exporter, the enforcer and OOM kills."""
    return [
        _container_oom_killed(policy),
        *_target_rules(policy, "Exporter", policy.exporter_job),
        _docker_down(policy, "Exporter", "warden_exporter_docker_up"),
        *_target_rules(policy, "Enforcer", policy.enforcer_job),
        _docker_down(policy, "Enforcer", "warden_enforcer_docker_up"),
        *_enforcer_activity_rules(policy),
    ]


def _container_oom_killed(policy: Policy) -> Rule:
    counter = selector("docker_container_memory_oom_kills_total", policy.exporter_job)
    return alert_rule(
        policy,
        name="ContainerOOMKilled",
        expr=f"increase({counter}[{policy.rate_window}]) > 0",
        for_=NO_DELAY,
        labels={"severity": "warning"},
        summary=(
            "The kernel OOM killer ended a process in container {{ $labels.name }}."
        ),
        description=(
            'The kernel killed about {{ $value | printf "%.0f" }} process(es) '
            "of container {{ $labels.name }} ({{ $labels.id }}) on "
            "{{ $labels.instance }} in the last "
            f"{policy.rate_window} because the container reached its memory limit."
        ),
    )


def _target_rules(policy: Policy, part: str, job: str) -> list[Rule]:
    down = alert_rule(
        policy,
        name=f"Warden{part}Down",
        expr=f"{selector('up', job)} == 0",
        for_=policy.health_for,
        labels={"severity": "critical"},
        summary=f"The Warden {part.lower()} {{{{ $labels.instance }}}} is down.",
        description=(
            f"Prometheus has failed to scrape job {job} at "
            f"{{{{ $labels.instance }}}} for at least {policy.health_for}, "
            f"so containers on that host are not guarded."
        ),
    )
    absent = alert_rule(
        policy,
        name=f"Warden{part}Absent",
        expr=f"absent({selector('up', job)})",
        for_=policy.health_for,
        labels={"severity": "critical"},
        summary=f"Prometheus scrapes no Warden {part.lower()}.",
        description=(
            f"No target of job {job} has been scraped for at least "
            f"{policy.health_for}. Check the scrape configuration and service "
            "discovery; until then no container is guarded."
        ),
    )
    return [down, absent]


def _docker_down(policy: Policy, part: str, metric: str) -> Rule:
    job = policy.exporter_job if part == "Exporter" else policy.enforcer_job
    consequence = (
        "it publishes no container metrics and no container is guarded"
        if part == "Exporter"
        else "it answers every webhook with an error and acts on no container"
    )
    return alert_rule(
        policy,
        name=f"Warden{part}DockerDown",
        expr=f"{selector(metric, job)} == 0",
        for_=policy.health_for,
        labels={"severity": "critical"},
        summary=(
            f"The Warden {part.lower()} {{{{ $labels.instance }}}} cannot reach Docker."
        ),
        description=(
            f"The Warden {part.lower()} at {{{{ $labels.instance }}}} has failed "
            f"to reach the Docker API for at least {policy.health_for}, so "
            f"{consequence}."
        ),
    )


def _enforcer_activity_rules(policy: Policy) -> list[Rule]:
    window = policy.rate_window
    actions = "warden_enforcer_actions_total"

    def counter_alert(
        *,
        name: str,
        by: str,
        counter: str,
        severity: str,
        summary: str,
        description: str,
    ) -> Rule:
        # Summing drops the counter's own action label, which would
        # otherwise make the enforcer read these alerts as orders.
        return alert_rule(
            policy,
            name=name,
            expr=f"sum by ({by}) (increase({counter}[{window}])) > 0",
            for_=NO_DELAY,
            labels={"severity": severity},
            summary=summary,
            description=description,
        )

    return [
        counter_alert(
            name="WardenEnforcerActed",
            by="instance, job, violation, result",
            counter=selector(
                actions, policy.enforcer_job, regex={"result": ACTED_RESULTS}
            ),
            severity="info",
            summary="The Warden enforcer {{ $labels.result }} containers.",
            description=(
                "The enforcer at {{ $labels.instance }} has "
                '{{ $labels.result }} about {{ $value | printf "%.0f" }} '
                "container(s) for {{ $labels.violation }} in the last "
                f"{window}. Its audit log names each container and the reason."
            ),
        ),
        counter_alert(
            name="WardenEnforcerActionErrors",
            by="instance, job, violation",
            counter=selector(actions, policy.enforcer_job, result="error"),
            severity="warning",
            summary="The Warden enforcer failed to act on containers.",
            description=(
                "The enforcer at {{ $labels.instance }} failed about "
                '{{ $value | printf "%.0f" }} action(s) for '
                f"{{{{ $labels.violation }}}} in the last {window}. Containers "
                "it should have acted on may still run."
            ),
        ),
        counter_alert(
            name="WardenEnforcerRateLimited",
            by="instance, job, violation",
            counter=selector(actions, policy.enforcer_job, result="rate_limited"),
            severity="warning",
            summary="The Warden enforcer skipped actions because of its rate limit.",
            description=(
                "The enforcer at {{ $labels.instance }} skipped about "
                '{{ $value | printf "%.0f" }} action(s) for '
                f"{{{{ $labels.violation }}}} in the last {window} because it "
                "reached its action rate limit. Containers it skipped still run."
            ),
        ),
        counter_alert(
            name="WardenEnforcerAuditErrors",
            by="instance, job",
            counter=selector("warden_enforcer_audit_errors_total", policy.enforcer_job),
            severity="critical",
            summary="The Warden enforcer cannot write its audit log.",
            description=(
                "The enforcer at {{ $labels.instance }} failed to write "
                '{{ $value | printf "%.0f" }} audit record(s) in the last '
                f"{window}. It decides nothing while the audit log is unavailable."
            ),
        ),
        counter_alert(
            name="WardenEnforcerAlertsTruncated",
            by="instance, job",
            counter=selector(
                "warden_enforcer_truncated_alerts_total", policy.enforcer_job
            ),
            severity="warning",
            summary="Alertmanager left alerts out of notifications to the enforcer.",
            description=(
                'Alertmanager left about {{ $value | printf "%.0f" }} alert(s) '
                "out of notifications to the enforcer at {{ $labels.instance }} "
                f"in the last {window}, so the enforcer did not act on them. "
                "Raise max_alerts of the Alertmanager receiver."
            ),
        ),
        counter_alert(
            name="WardenEnforcerWebhookErrors",
            by="instance, job, code",
            counter=selector(
                "warden_enforcer_requests_total",
                policy.enforcer_job,
                regex={"code": "4..|5.."},
            ),
            severity="warning",
            summary=(
                "The Warden enforcer answered webhooks with HTTP {{ $labels.code }}."
            ),
            description=(
                "The enforcer at {{ $labels.instance }} answered about "
                '{{ $value | printf "%.0f" }} request(s) with HTTP '
                f"{{{{ $labels.code }}}} in the last {window}. Alertmanager "
                "retries a 5xx but drops a 4xx, such as a wrong bearer token."
            ),
        ),
    ]
