"""Fixtures of the end-to-end tests: the whole stack, started for real.

Every stack here runs on free ports with its own state folder and guards
only containers named ``warden-e2e-<run>-...``, so it can run beside a
user's ``make up`` and never touches another container on the engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from alerts.policy import load_policy
from alerts.render import render_rules
from deploy.config import StackSettings
from deploy.options import committed_rule_files
from deploy.phase import NANOSECONDS, DelayWindow
from deploy.stack import DELAY_TOLERANCE_SECONDS, Stack
from deploy.workloads import remove_labelled
from tests.services import free_port, require_binary, wait_until

E2E_LABEL = "warden.e2e"
RUN = uuid.uuid4().hex[:6]
PREFIX = f"warden-e2e-{RUN}-"

# A faster policy than the default, so the whole set runs in a few minutes:
# 1 s scrapes and evaluations and short `for` durations.
FAST_INTERVAL_SECONDS = 1.0
FAST_POLICY = (
    "scrape_interval=1s",
    "evaluation_interval=1s",
    "rate_window=4s",
    "violations.cpu_spike.for=3s",
    "violations.memory_spike.for=2s",
)


def stack_settings(
    state: Path, rule_files: list[Path], interval: float, dry_run: bool = False
) -> StackSettings:
    """Return settings of a stack on free ports that guards this run only."""
    return StackSettings(
        state=state,
        ports={
            part: free_port()
            for part in ("exporter", "enforcer", "prometheus", "alertmanager")
        },
        name_regex=f"^{PREFIX}",
        scrape_interval_seconds=interval,
        evaluation_interval_seconds=interval,
        rule_files=rule_files,
        group_interval_seconds=interval,
        dry_run=dry_run,
    )


def render_fast_rules(folder: Path) -> Path:
    """Render the faster policy into a rule file in ``folder``."""
    rules = folder / "rules.yml"
    rules.write_text(render_rules(load_policy(overrides=FAST_POLICY)))
    return rules


def check_evaluations_follow_scrapes(stack: Stack, interval: float) -> None:
    """Assert that the enforcement group runs just after each exporter scrape."""
    wait_until(
        lambda: bool(stack.evaluation_delays()),
        timeout=3 * interval + 5,
        message="Prometheus to scrape the exporter and evaluate the rules",
    )
    delays = stack.evaluation_delays()
    window = DelayWindow.for_interval(interval)
    assert set(delays) == {"warden-containers"}, delays
    delay = delays["warden-containers"]
    assert delay >= window.low / NANOSECONDS - DELAY_TOLERANCE_SECONDS, delays
    assert delay <= window.high / NANOSECONDS + DELAY_TOLERANCE_SECONDS, delays


def require_stack_binaries() -> None:
    for name in ("prometheus", "promtool", "prometheus-alertmanager", "amtool"):
        require_binary(name)


@pytest.fixture(scope="session")
def e2e_docker(docker_client: docker.DockerClient) -> Iterator[docker.DockerClient]:
    """Return the engine client; remove this run's containers at the end."""
    yield docker_client
    remove_labelled(docker_client, E2E_LABEL, RUN)


@pytest.fixture(scope="module")
def fast_stack(
    tmp_path_factory: pytest.TempPathFactory, e2e_docker: docker.DockerClient
) -> Iterator[Stack]:
    """Run the stack with the faster policy for one test module."""
    require_stack_binaries()
    folder = tmp_path_factory.mktemp("fast-stack")
    rules = render_fast_rules(folder)
    settings = stack_settings(folder / "state", [rules], FAST_INTERVAL_SECONDS)
    with Stack(settings) as stack:
        stack.start()
        yield stack


@pytest.fixture(scope="module")
def default_stack(
    tmp_path_factory: pytest.TempPathFactory, e2e_docker: docker.DockerClient
) -> Iterator[Stack]:
    """Run the stack with the committed rules and 5 s intervals, unchanged."""
    require_stack_binaries()
    folder = tmp_path_factory.mktemp("default-stack")
    settings = stack_settings(folder / "state", committed_rule_files(), 5.0)
    with Stack(settings) as stack:
        stack.start()
        yield stack
