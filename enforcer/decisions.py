"""Decide, for each alert of a notification, whether to act, and act.

The checks run in this order, and the first that applies is the decision:

1. ``skipped_resolved``: the alert's own status is not firing. The group's
   status is never a reason to act.
2. ``skipped_invalid``: a label is outside the contract that the alert
   rules follow: ``action`` kill, stop or pause, ``id`` a full 64-hex
   lowercase container ID, ``violation`` cpu_spike, memory_spike,
   fork_bomb or combined_anomaly, and ``severity`` critical. The reason
   names the first such label with an escaped excerpt of its value.
3. ``duplicate``: the audit log already has a decision for this alert
   occurrence (fingerprint plus startsAt), or another request is deciding
   it now. This comes before any Docker call, so a re-delivery for a
   container that was already killed is recorded as a duplicate and not as
   ``skipped_not_running``.
4. ``not_found``: no container has this full ID.
5. ``skipped_not_running``: the container is not running (for pause, also
   when it is already paused).
6. ``skipped_protected``: the container is protected.
7. ``skipped_stale``: the container started after the alert did, so the
   alert is about an earlier life of it.
8. ``rate_limited``: the limit of actions per minute is reached.
9. ``dry_run``: the enforcer only records.
10. ``killed``, ``stopped`` or ``paused``, or ``error`` when Docker fails.

Check 3 runs under the audit log's lock and claims the occurrence, so two
deliveries of one alert at the same moment, from two threads or two
processes sharing the log, give one action. Checks 4 to 10 run without
the lock, so a stop that waits out its grace period delays no other
alert. The record is then appended under the lock again before the claim
is released.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enforcer.audit import AuditLog
from enforcer.docker_api import (
    FULL_ID,
    ContainerNotFoundError,
    ContainerState,
    DockerActionError,
    DockerBackend,
    DockerUnavailableError,
    Usage,
)
from enforcer.metrics import ACTION_RESULTS, KNOWN_VIOLATIONS, EnforcerMetrics
from enforcer.payload import Alert, excerpt
from enforcer.ratelimit import SlidingWindowLimiter
from enforcer.settings import ProtectRules

logger = logging.getLogger(__name__)

ACTIONS = ACTION_RESULTS
# The only severity that rules asking for enforcement set.
SEVERITY = "critical"
PROTECT_LABEL = "warden.protect"
ROLE_LABEL = "warden.role"
_CGROUP_ID = re.compile(r"(?:/docker/|docker-)([0-9a-f]{64})(?:\.scope)?\b")
_MOUNT_ID = re.compile(r"/containers/([0-9a-f]{64})/")


@dataclass(frozen=True)
class NotificationContext:
    """Facts about one webhook request that every record of it carries."""

    request_id: str
    received_at: float  # time.monotonic() when the request arrived
    receiver: str
    group_key: str
    truncated_alerts: int

    def as_record(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver,
            "groupKey": self.group_key,
            "truncatedAlerts": self.truncated_alerts,
        }


@dataclass(frozen=True)
class Decision:
    """The outcome of the checks for one alert."""

    result: str
    reason: str
    state: ContainerState | None = None
    usage: Usage | None = None
    acted: bool = False


class Decider:
    """Run the checks on the alerts of a notification and record each one."""

    def __init__(
        self,
        *,
        docker: DockerBackend,
        audit: AuditLog,
        metrics: EnforcerMetrics,
        limiter: SlidingWindowLimiter,
        protect: ProtectRules,
        guard_name_regex: re.Pattern[str] | None = None,
        own_container_ids: Iterable[str] = (),
        stop_grace_seconds: float = 10.0,
        dry_run: bool = False,
    ) -> None:
        self.docker = docker
        self.audit = audit
        self.metrics = metrics
        self.limiter = limiter
        self.protect = protect
        self.guard_name_regex = guard_name_regex
        self.own_container_ids = frozenset(own_container_ids)
        self.stop_grace_seconds = stop_grace_seconds
        self.dry_run = dry_run

    def handle(
        self, alerts: Iterable[Alert], context: NotificationContext
    ) -> list[dict[str, Any]]:
        """Decide on every alert and append one audit record per alert.

        Raises:
            DockerUnavailableError: Docker stopped responding; the alerts
                decided so far are recorded, the rest are not.
            AuditError: the audit log could not be written.
        """
        records = []
        for alert in alerts:
            records.append(self._handle_one(alert, context))
        return records

    def _handle_one(self, alert: Alert, context: NotificationContext) -> dict[str, Any]:
        labels: Mapping[str, str] = alert.labels
        action = labels.get("action", "")
        container_id = labels.get("id", "")

        early = _validate(alert, action, container_id)
        if early is not None:
            return self._record(alert, early, context)

        with self.audit.locked():
            if self.audit.is_decided(alert.key):
                reason = "this alert occurrence was already decided"
            elif not self.audit.claim(alert.key):
                reason = "another request is deciding this alert occurrence"
            else:
                reason = ""
            if reason:
                return self._record(
                    alert, Decision("duplicate", reason), context, locked=True
                )

        try:
            decision = self._decide(alert, action, container_id)
            return self._record(alert, decision, context)
        finally:
            self.audit.release(alert.key)

    def _decide(self, alert: Alert, action: str, container_id: str) -> Decision:
        try:
            state = self.docker.inspect(container_id)
        except ContainerNotFoundError:
            self.metrics.docker_up.set(1)
            return Decision("not_found", "no container has this ID")
        except DockerUnavailableError:
            self.metrics.docker_up.set(0)
            raise
        self.metrics.docker_up.set(1)

        usage = self.docker.usage(state) if state.running else None
        if not state.running:
            return Decision(
                "skipped_not_running", f"container is {state.status}", state, usage
            )
        if action == "pause" and state.paused:
            return Decision("skipped_not_running", "already paused", state, usage)

        protected = self.protection_reason(state)
        if protected is not None:
            return Decision("skipped_protected", protected, state, usage)

        if state.started_at is not None and state.started_at > alert.starts_at:
            return Decision(
                "skipped_stale",
                f"container started at {_rfc3339(state.started_at)}, after "
                f"the alert's startsAt {_rfc3339(alert.starts_at)}",
                state,
                usage,
            )

        if not self.limiter.try_acquire():
            logger.error(
                "rate limit of %d actions per minute reached, not acting: "
                "container_id=%s alertname=%s action=%s",
                self.limiter.limit,
                container_id,
                alert.labels.get("alertname", ""),
                action,
            )
            return Decision(
                "rate_limited",
                f"{self.limiter.limit} actions were taken in the last minute "
                "(--actions.max-per-minute)",
                state,
                usage,
            )

        if self.dry_run:
            return Decision("dry_run", f"would {action}", state, usage)

        return self._act(action, state, usage)

    def _act(self, action: str, state: ContainerState, usage: Usage | None) -> Decision:
        try:
            if action == "kill":
                self.docker.kill(state.id)
            elif action == "stop":
                self.docker.stop(state.id, self.stop_grace_seconds)
            else:
                self.docker.pause(state.id)
        except ContainerNotFoundError:
            return Decision(
                "not_found", f"container was removed before {action}", state, usage
            )
        except (DockerActionError, DockerUnavailableError) as error:
            return Decision("error", str(error), state, usage, acted=True)
        return Decision(
            ACTIONS[action], f"{action} succeeded", state, usage, acted=True
        )

    def protection_reason(self, state: ContainerState) -> str | None:
        """Return why a container must not be acted on, or None."""
        if state.labels.get(PROTECT_LABEL, "").lower() == "true":
            return f"label {PROTECT_LABEL}=true"
        if ROLE_LABEL in state.labels:
            return f"monitoring stack (label {ROLE_LABEL}={state.labels[ROLE_LABEL]})"
        if state.id in self.own_container_ids:
            return "the enforcer's own container"
        if state.name in self.protect.names:
            return f"name {state.name} is in --protect"
        for key, value in sorted(self.protect.labels):
            if state.labels.get(key) == value:
                return f"label {key}={value} is in --protect"
        pattern = self.guard_name_regex
        if pattern is not None and pattern.search(state.name) is None:
            return (
                f"name {state.name} is outside the guarded set "
                f"(--guard.name-regex {pattern.pattern!r})"
            )
        return None

    def _record(
        self,
        alert: Alert,
        decision: Decision,
        context: NotificationContext,
        locked: bool = False,
    ) -> dict[str, Any]:
        labels = alert.labels
        state = decision.state
        reason = decision.reason
        if state is not None:
            reason += _name_mismatch(labels, state.name)
        duration = time.monotonic() - context.received_at
        record: dict[str, Any] = {
            "time": _rfc3339(datetime.now(UTC)),
            "container_id": labels.get("id", ""),
            "container_name": state.name if state else labels.get("name", ""),
            "image": state.image if state else "",
            "alertname": labels.get("alertname", ""),
            "violation": labels.get("violation", ""),
            "action": labels.get("action", ""),
            "result": decision.result,
            "reason": reason,
            "alert": {
                "key": alert.key,
                "fingerprint": alert.fingerprint,
                "startsAt": alert.starts_at_raw,
                "status": alert.status,
                "labels": dict(labels),
                "annotations": dict(alert.annotations),
            },
            "usage": (decision.usage or Usage()).as_record(),
            "duration_seconds": round(duration, 6),
            "request_id": context.request_id,
            "notification": context.as_record(),
        }
        if locked:
            self.audit.append(record)
        else:
            with self.audit.locked():
                self.audit.append(record)

        self.metrics.count_decision(
            record["action"], record["violation"], decision.result
        )
        if decision.acted:
            self.metrics.action_duration.observe(duration)
            log = logger.info if decision.result != "error" else logger.error
            log(
                "action %s on container: container_id=%s name=%s alertname=%s "
                "result=%s reason=%s",
                record["action"],
                record["container_id"],
                record["container_name"],
                record["alertname"],
                decision.result,
                reason,
            )
        else:
            if decision.result == "skipped_invalid" and "action" in labels:
                log = logger.warning
            elif decision.result == "duplicate":
                log = logger.debug
            else:
                log = logger.info
            log(
                "not acting: container_id=%s alertname=%s result=%s reason=%s",
                record["container_id"],
                record["alertname"],
                decision.result,
                reason,
            )
        return record


def own_container_ids(proc_root: Path = Path("/proc")) -> frozenset[str]:
    """Find the ID of the container this process runs in, if any.

    Reads /proc/self/cgroup (``/docker/<id>`` on cgroupfs,
    ``docker-<id>.scope`` on systemd) and /proc/self/mountinfo, where Docker
    bind-mounts /etc/hostname from ``.../containers/<id>/hostname``. The
    mountinfo lines are limited to that mount point because the host's own
    mountinfo lists every container's shm mount.
    """
    found: set[str] = set()
    try:
        cgroup = (proc_root / "self" / "cgroup").read_text()
    except OSError:
        cgroup = ""
    found.update(_CGROUP_ID.findall(cgroup))
    try:
        mountinfo = (proc_root / "self" / "mountinfo").read_text()
    except OSError:
        mountinfo = ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] in ("/etc/hostname", "/etc/hosts"):
            found.update(_MOUNT_ID.findall(fields[3]))
    return frozenset(found)


def _validate(alert: Alert, action: str, container_id: str) -> Decision | None:
    if alert.status != "firing":
        return Decision("skipped_resolved", f"alert status is {alert.status!r}")
    if "action" not in alert.labels:
        # Rules without an action label only warn, so this is not an error.
        return Decision("skipped_invalid", "alert has no action label")
    if action not in ACTIONS:
        return Decision(
            "skipped_invalid",
            f"label action={excerpt(action)}; expected one of kill, stop, pause",
        )
    if not FULL_ID.fullmatch(container_id):
        return Decision(
            "skipped_invalid",
            f"label id={excerpt(container_id)}; expected a full 64-hex lowercase ID",
        )
    for label, allowed in (
        ("violation", sorted(KNOWN_VIOLATIONS)),
        ("severity", [SEVERITY]),
    ):
        if label not in alert.labels:
            return Decision(
                "skipped_invalid",
                f"alert has no {label} label; expected one of {', '.join(allowed)}",
            )
        if alert.labels[label] not in allowed:
            return Decision(
                "skipped_invalid",
                f"label {label}={excerpt(alert.labels[label])}; expected one of "
                f"{', '.join(allowed)}",
            )
    return None


def _name_mismatch(labels: Mapping[str, str], name: str) -> str:
    # Docker keeps the ID across a rename, so a differing name label is no
    # reason to skip. It may also mean an alert sent straight to
    # Alertmanager's API, so the audit record says so.
    if "name" not in labels:
        return f"; the alert has no name label, the container is named {name}"
    if labels["name"] != name:
        return (
            f"; the alert's name label {excerpt(labels['name'])} differs from "
            f"the container's name {name}"
        )
    return ""


def _rfc3339(moment: datetime) -> str:
    """Format a time as RFC 3339 UTC with milliseconds."""
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
