"""Run every dashboard query against a real Prometheus with real data.

Prometheus scrapes a real exporter and a real enforcer every second and
evaluates the rules rendered from alerts/policy.yml. One container burns
its whole CPU limit until ContainerCPUSpike fires. The test then sends the
enforcer that alert, as Alertmanager would, and the enforcer kills the
container. A second container burns its CPU too and fires the same alert,
but the test never sends it, and a third one idles. Neither is acted on.
Every panel's query, with its variables filled in as Grafana does, must
then return data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RUN_ID, TEST_IMAGE, TEST_LABEL
from tests.grafana.dashboard import Query, fill_variables, load_dashboard, queries
from tests.services import (
    Server,
    ServerFactory,
    free_port,
    http_get,
    require,
    wait_until,
)

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

# Grafana makes $__rate_interval at least four scrape intervals. With one
# second scrapes, a little more than four leaves room for a late scrape.
RATE_INTERVAL = "10s"
DASHBOARD = load_dashboard()
PANEL_QUERIES = [query for query in queries(DASHBOARD) if query.kind == "panel"]
(ANNOTATION,) = [query for query in queries(DASHBOARD) if query.kind == "annotation"]
FIRING_PANEL = "Containers firing a policy alert"

# Faster than the shipped policy, so the alert fires within seconds.
POLICY_OVERRIDES = (
    "scrape_interval=1s",
    "evaluation_interval=1s",
    "rate_window=4s",
    "violations.cpu_spike.for=3s",
)


SPINNER_NANO_CPUS = 100_000_000
SPINNER_CPU_SHARES = 8192


@dataclass
class Stack:
    """The running servers and containers, and what the test saw on the way."""

    prometheus: Server
    enforcer: Server
    exporter_instance: str
    busy: Container
    spared: Container
    idle: Container
    started: float
    decisions: list[dict[str, Any]] = field(default_factory=list)
    kill_series_before_kill: bool = False
    firing_rows: list[dict[str, str]] = field(default_factory=list)


def console_script(name: str) -> str:
    """Return the path of a console script installed beside this Python."""
    path = Path(sys.executable).with_name(name)
    require(path.exists(), f"{name} is not installed; run pip install -e .")
    return str(path)


def api(prometheus: Server, path: str, **params: Any) -> Any:
    """Call the Prometheus HTTP API and return the data of a successful reply."""
    url = f"{prometheus.url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    status, body = http_get(url)
    reply = json.loads(body)
    assert status == 200, f"{path} {params}: {reply.get('error')}"
    return reply["data"]


def instant(prometheus: Server, expr: str) -> list[dict[str, Any]]:
    return list(api(prometheus, "/api/v1/query", query=expr)["result"])


def query_range(prometheus: Server, expr: str, start: float) -> list[dict[str, Any]]:
    data = api(
        prometheus,
        "/api/v1/query_range",
        query=expr,
        start=start,
        end=time.time(),
        step="1s",
    )
    return list(data["result"])


def last_scrape(prometheus: Server, job: str) -> float:
    """Return the Unix time of the latest scrape of ``job``, or 0."""
    result = instant(prometheus, f'timestamp(up{{job="{job}"}})')
    return float(result[0]["value"][1]) if result else 0.0


def finite_series(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the series that have at least one finite sample."""
    return [
        series
        for series in result
        if any(math.isfinite(float(value)) for _, value in series["values"])
    ]


def start_container(
    client: docker.DockerClient, started: list[Container], command: str, **kwargs: Any
) -> Container:
    container = client.containers.run(
        TEST_IMAGE,
        ["sh", "-c", command],
        detach=True,
        network_mode="none",
        labels={TEST_LABEL: RUN_ID},
        **kwargs,
    )
    started.append(container)
    return container


def render_rules(folder: Path) -> Path:
    rules = folder / "rules.yml"
    argv = [console_script("warden-alerts"), "--output", str(rules)]
    for override in POLICY_OVERRIDES:
        argv += ["--set", override]
    subprocess.run(argv, check=True, capture_output=True)
    return rules


def start_warden(factory: ServerFactory, folder: Path) -> tuple[Server, Server, str]:
    """Start the exporter and the enforcer, and return them with the token."""
    exporter_port = free_port()
    exporter = factory.start(
        "exporter",
        [
            console_script("warden-exporter"),
            f"--web.listen-address=127.0.0.1:{exporter_port}",
        ],
        exporter_port,
        ready_path="/metrics",
    )
    token = hashlib.sha256(RUN_ID.encode()).hexdigest()
    token_file = folder / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    enforcer_port = free_port()
    enforcer = factory.start(
        "enforcer",
        [
            console_script("warden-enforcer"),
            f"--web.listen-address=127.0.0.1:{enforcer_port}",
            f"--webhook.token-file={token_file}",
            f"--audit.path={folder / 'audit.jsonl'}",
        ],
        enforcer_port,
        ready_path="/healthz",
    )
    return exporter, enforcer, token


def scrape_config(exporter: Server, enforcer: Server) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "warden-exporter",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
            },
            {
                "job_name": "warden-enforcer",
                "static_configs": [{"targets": [f"127.0.0.1:{enforcer.port}"]}],
            },
        ],
    }


def firing_alert(prometheus: Server, container: Container) -> dict[str, Any]:
    """Wait until ContainerCPUSpike fires for ``container`` and return it."""

    def find() -> dict[str, Any] | None:
        for alert in api(prometheus, "/api/v1/alerts")["alerts"]:
            labels = alert["labels"]
            if (
                labels.get("alertname") == "ContainerCPUSpike"
                and labels.get("id") == container.id
                and alert["state"] == "firing"
            ):
                return dict(alert)
        return None

    return dict(wait_until(find, timeout=60, message="ContainerCPUSpike to fire"))


def exposes_kill_series(enforcer: Server) -> bool:
    """Tell whether the enforcer exposes its cpu_spike kill count already."""
    _, text = http_get(f"{enforcer.url}/metrics")
    wanted = {"action": "kill", "violation": "cpu_spike", "result": "killed"}
    return any(
        sample.name == "warden_enforcer_actions_total" and sample.labels == wanted
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    )


def webhook_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """Wrap one Prometheus alert in an Alertmanager webhook payload, version 4."""
    labels = alert["labels"]
    fingerprint = hashlib.sha256(
        json.dumps(labels, sort_keys=True).encode()
    ).hexdigest()[:16]
    return {
        "version": "4",
        "status": "firing",
        "receiver": "warden",
        "groupKey": '{}:{alertname="ContainerCPUSpike"}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "ContainerCPUSpike"},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": alert["annotations"],
                "startsAt": alert["activeAt"],
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": fingerprint,
            }
        ],
    }


def post_webhook(enforcer: Server, token: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{enforcer.url}/webhook",
        data=json.dumps(payload).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def stack(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    folder = Path(tmp_path_factory.mktemp("live"))
    factory = ServerFactory(folder)
    containers: list[Container] = []
    try:
        started = time.time()
        # A high CPU weight keeps each spinner at its limit on a busy host,
        # so that its alert does not stop firing for one check. The spared
        # container's alert must keep firing, or the annotation marks it.
        busy = start_container(
            docker_client,
            containers,
            "while :; do :; done",
            nano_cpus=SPINNER_NANO_CPUS,
            cpu_shares=SPINNER_CPU_SHARES,
        )
        spared = start_container(
            docker_client,
            containers,
            "while :; do :; done",
            nano_cpus=SPINNER_NANO_CPUS,
            cpu_shares=SPINNER_CPU_SHARES,
        )
        idle = start_container(docker_client, containers, "sleep 3600")
        exporter, enforcer, token = start_warden(factory, folder)
        prometheus = factory.prometheus(
            scrape_config(exporter, enforcer), [render_rules(folder)]
        )
        stack = Stack(
            prometheus=prometheus,
            enforcer=enforcer,
            exporter_instance=f"127.0.0.1:{exporter.port}",
            busy=busy,
            spared=spared,
            idle=idle,
            started=started,
        )

        alert = firing_alert(prometheus, busy)
        firing_alert(prometheus, spared)
        panel = next(q for q in PANEL_QUERIES if q.title == FIRING_PANEL)
        stack.firing_rows = [
            row["metric"] for row in instant(prometheus, fill_variables(panel.expr))
        ]
        stack.kill_series_before_kill = exposes_kill_series(enforcer)
        stack.decisions = post_webhook(enforcer, token, webhook_payload(alert))[
            "decisions"
        ]

        wait_until(
            lambda: instant(
                prometheus, 'warden_enforcer_actions_total{result="killed"} >= 1'
            ),
            timeout=30,
            message="Prometheus to scrape the enforcer's kill",
        )
        # A few more scrapes, so that every rate over RATE_INTERVAL that
        # covers the kill has the samples it needs.
        killed_at = time.time()
        wait_until(
            lambda: last_scrape(prometheus, "warden-enforcer") > killed_at + 3,
            timeout=30,
            message="three more scrapes of the enforcer",
        )
        yield stack
    finally:
        factory.stop_all()
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


@pytest.mark.parametrize(
    "query", PANEL_QUERIES, ids=[query.where for query in PANEL_QUERIES]
)
def test_panel_query_returns_data(stack: Stack, query: Query) -> None:
    expr = fill_variables(query.expr, RATE_INTERVAL)
    result = query_range(stack.prometheus, expr, stack.started)
    assert finite_series(result), f"no finite sample from:\n{expr}"


def test_firing_panel_lists_busy_container(stack: Stack) -> None:
    ids = [row.get("id") for row in stack.firing_rows]
    assert stack.busy.id in ids


def test_firing_panel_lists_spared_container(stack: Stack) -> None:
    ids = [row.get("id") for row in stack.firing_rows]
    assert stack.spared.id in ids


def test_firing_panel_leaves_out_idle_container(stack: Stack) -> None:
    ids = [row.get("id") for row in stack.firing_rows]
    assert stack.idle.id not in ids


def test_kill_series_exposed_before_kill(stack: Stack) -> None:
    # increase() in the panels and the annotation needs a sample at 0
    # before the first kill of a label set.
    assert stack.kill_series_before_kill


def test_enforcer_killed_busy_container(stack: Stack) -> None:
    results = [decision.get("result") for decision in stack.decisions]
    assert results == ["killed"], stack.decisions


def annotation_series(stack: Stack) -> list[dict[str, Any]]:
    expr = fill_variables(ANNOTATION.expr, RATE_INTERVAL)
    return finite_series(query_range(stack.prometheus, expr, stack.started))


def test_annotation_marks_killed_container(stack: Stack) -> None:
    # Other containers on the same engine may be marked too, when their own
    # alert of the same violation resolved at that moment; look at ours.
    marked = {
        series["metric"].get("id"): series["metric"]
        for series in annotation_series(stack)
    }
    assert stack.busy.id in marked
    assert marked[stack.busy.id]["violation"] == "cpu_spike"
    assert marked[stack.busy.id]["name"] == stack.busy.name


def test_annotation_skips_idle_container(stack: Stack) -> None:
    ids = [series["metric"].get("id") for series in annotation_series(stack)]
    assert stack.idle.id not in ids


def test_annotation_skips_still_firing_container(stack: Stack) -> None:
    ids = [series["metric"].get("id") for series in annotation_series(stack)]
    assert stack.spared.id not in ids


def label_values(stack: Stack, variable: str) -> list[str]:
    """Run a label_values() variable query as Grafana's Prometheus source does."""
    (item,) = [v for v in DASHBOARD["templating"]["list"] if v["name"] == variable]
    query = item["query"]["query"]
    selector = fill_variables(query[len("label_values(") : query.rindex(",")])
    label = query[query.rindex(",") + 1 : -1].strip()
    data = api(
        stack.prometheus,
        f"/api/v1/label/{label}/values",
        **{"match[]": selector, "start": stack.started, "end": time.time()},
    )
    return list(data)


def test_name_variable_lists_test_containers(stack: Stack) -> None:
    names = label_values(stack, "name")
    assert stack.idle.name in names
    assert stack.spared.name in names
    assert stack.busy.name in names


def test_instance_variable_lists_exporter(stack: Stack) -> None:
    assert label_values(stack, "instance") == [stack.exporter_instance]
