"""Measure the seconds from a container's start to its kill, per violation.

Starts the whole stack with the committed policy (5 s scrapes and rule
evaluations) and waits until it has scraped and evaluated twice. Then, in
each round, the four abusive containers start together at a random point
of the scrape interval, and each is followed until the enforcer kills it.
The time is the enforcer's audit record time minus Docker's StartedAt.
Each violation is compared with a target of its `for` plus two scrape
intervals plus 2 s.

The stack lines up its rule evaluations just after its scrapes of the
exporter (deploy/phase.py). For comparison, the same rounds also run on
stacks that leave both where Prometheus' hashes put them, which is what a
hand-written Prometheus config gets. That delay is fixed for the life of
one Prometheus, so each kind runs on several fresh stacks.

    deploy/engine.sh run -- .venv/bin/python benchmarks/e2e_latency.py

The stack listens on free ports with its own state folder and guards only
containers named ``warden-bench-<run>-...``, so it runs beside `make up`.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import docker

# The stack code lives in deploy/, which is not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.policy import Policy, load_policy
from deploy.config import DEFAULT_PORTS, StackSettings
from deploy.credentials import read_token
from deploy.events import EventsClient, first_actions
from deploy.options import committed_rule_files
from deploy.stack import Stack
from deploy.workloads import (
    VIOLATIONS,
    Started,
    parse_docker_time,
    remove_labelled,
    remove_workloads,
    start_workloads,
)

BENCH_LABEL = "warden.e2e-latency"
ROUND_TIMEOUT_SECONDS = 120.0
MAX_ACTIONS_PER_MINUTE = 100


def free_ports() -> dict[str, int]:
    """Pick a free port on 127.0.0.1 for each part of the stack."""
    ports = {}
    for part in DEFAULT_PORTS:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[part] = int(sock.getsockname()[1])
    return ports


def nearest_rank(values: Sequence[float], quantile: float) -> float:
    """Return the nearest-rank quantile: with 5 values, p95 is the maximum."""
    ordered = sorted(values)
    rank = max(1, math.ceil(quantile * len(ordered)))
    return ordered[rank - 1]


def run_round(
    client: docker.DockerClient, stack: Stack, prefix: str, labels: dict[str, str]
) -> dict[str, float]:
    """Start the four abusive containers together; return seconds to kill each."""
    settings = stack.settings
    events = EventsClient(
        settings.url("enforcer"),
        read_token(settings.state),
        since=datetime.now(UTC) - timedelta(seconds=1),
    )
    started: list[Started] = start_workloads(client, VIOLATIONS, prefix, labels)
    records: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            stack.check_children()
            records.extend(events.new_records())
            if {item.id for item in started} <= set(first_actions(records)):
                break
            time.sleep(0.5)
    finally:
        remove_workloads(started)

    actions = first_actions(records)
    seconds = {}
    for item in started:
        record = actions.get(item.id)
        violation = str(item.workload.violation)
        if record is None or record.get("violation") != violation:
            print(f"  {item.name}: not killed for {violation}: {record}", flush=True)
            seconds[violation] = math.inf
            continue
        killed_at = parse_docker_time(str(record["time"]))
        seconds[violation] = (killed_at - item.started_at).total_seconds()
    return seconds


def run_stack(
    client: docker.DockerClient,
    *,
    policy_scrape: float,
    evaluation: float,
    prefix: str,
    run: str,
    rounds: int,
    aligned: bool,
    results: dict[str, list[float]],
) -> None:
    """Start one fresh stack, warm it up, and add its rounds to ``results``."""
    with tempfile.TemporaryDirectory(prefix="warden-bench-") as folder:
        settings = StackSettings(
            state=Path(folder) / "state",
            ports=free_ports(),
            name_regex=f"^{prefix}",
            scrape_interval_seconds=policy_scrape,
            evaluation_interval_seconds=evaluation,
            rule_files=committed_rule_files(),
            # Four kills every round exceed the enforcer's default limit of
            # ten actions a minute, which would measure the limiter.
            enforcer_flags=[f"--actions.max-per-minute={MAX_ACTIONS_PER_MINUTE}"],
            align_evaluations=aligned,
        )
        with Stack(settings) as stack:
            stack.start()
            # A round that starts before the first scrapes and evaluations
            # measures the stack's start-up, not the detection time.
            time.sleep(2 * max(policy_scrape, evaluation))
            delays = ", ".join(
                f"{group} {delay:.2f} s"
                for group, delay in stack.evaluation_delays().items()
            )
            print(f"{prefix} scrape to evaluation: {delays}", flush=True)
            for index in range(rounds):
                # Kills follow evaluations, so a round that started right
                # after the previous one would start at the same point of
                # the scrape interval every time.
                time.sleep(random.uniform(0, policy_scrape))
                seconds = run_round(
                    client, stack, f"{prefix}{index}-", {BENCH_LABEL: run}
                )
                for violation, value in seconds.items():
                    results[violation].append(value)
                figures = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items())
                print(f"{prefix} round {index + 1}: {figures}", flush=True)


def table_row(
    kind: str, violation: str, values: Sequence[float], policy: Policy, scrape: float
) -> str:
    """Format one violation's figures as a row of the Markdown table."""
    for_seconds = policy.violations[violation].for_.seconds
    target = for_seconds + 2 * scrape + 2
    p95 = nearest_rank(values, 0.95)
    within = "yes" if p95 <= target else "no"
    return (
        f"| {kind} | {violation} | {for_seconds:g} s | {min(values):.1f} s "
        f"| {statistics.median(values):.1f} s | {p95:.1f} s "
        f"| {max(values):.1f} s | {target:g} s | {within} |"
    )


def stop_on_sigterm(signal_number: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt, so the stack and containers go."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table of the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="rounds per stack (default: 5)"
    )
    parser.add_argument(
        "--stacks",
        type=int,
        default=4,
        help="fresh stacks that line up evaluations with scrapes (default: 4)",
    )
    parser.add_argument(
        "--unaligned-stacks",
        type=int,
        default=2,
        help="fresh stacks with Prometheus' own evaluation offset, for "
        "comparison (default: 2)",
    )
    arguments = parser.parse_args(argv)
    if arguments.runs < 1 or arguments.stacks < 1 or arguments.unaligned_stacks < 0:
        parser.error(
            "--runs and --stacks must be at least 1, --unaligned-stacks at least 0"
        )
    signal.signal(signal.SIGTERM, stop_on_sigterm)

    policy = load_policy()
    scrape = policy.scrape_interval.seconds
    run = uuid.uuid4().hex[:6]
    prefix = f"warden-bench-{run}-"
    client = docker.from_env()
    kinds = {"aligned": arguments.stacks, "unaligned": arguments.unaligned_stacks}
    results: dict[str, dict[str, list[float]]] = {
        kind: {w.violation or "": [] for w in VIOLATIONS} for kind in kinds
    }

    started_at = time.monotonic()
    try:
        for kind, stacks in kinds.items():
            for stack_index in range(stacks):
                run_stack(
                    client,
                    policy_scrape=scrape,
                    evaluation=policy.evaluation_interval.seconds,
                    prefix=f"{prefix}{kind[0]}{stack_index}-",
                    run=run,
                    rounds=arguments.runs,
                    aligned=kind == "aligned",
                    results=results[kind],
                )
    finally:
        remove_labelled(client, BENCH_LABEL, run)
    elapsed = time.monotonic() - started_at

    print()
    print(
        f"Host: {platform.node()}, {platform.machine()}, "
        f"Python {platform.python_version()}, {arguments.stacks} aligned and "
        f"{arguments.unaligned_stacks} unaligned stacks of {arguments.runs} "
        f"rounds, scrape and evaluation every {scrape:g} s, "
        f"{elapsed:.0f} s in all."
    )
    print()
    print(
        "| evaluations | violation | for | min | median | p95 | max | target | within |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, by_violation in results.items():
        for violation, values in by_violation.items():
            if values:
                print(table_row(kind, violation, values, policy, scrape))
    # A benchmark reports and asserts nothing: a missed target is a figure.
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the stack and the containers were removed")
        sys.exit(130)
