"""Show Warden at work: ``make demo`` while ``make up`` runs.

Starts a CPU spinner, a memory filler, a fork bomb, a container that is both
busy and nearly full, a well-behaved one and a protected spinner. Prints
each audit record as the enforcer writes it, then a summary of who was
killed, for which violation and how long after its start. The containers
are removed at the end, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import docker
import docker.errors

from deploy.config import StackConfigError, StackSettings
from deploy.credentials import CredentialsError, read_token
from deploy.events import EventsClient, EventsError, first_actions
from deploy.options import settings_from_environment
from deploy.processes import StackProcessError
from deploy.state_lock import StateLock
from deploy.workloads import (
    COMBINED,
    CPU_SPIKE,
    FORK_BOMB,
    MEMORY_SPIKE,
    PROTECTED_SPINNER,
    WELL_BEHAVED,
    Started,
    is_running,
    parse_docker_time,
    remove_labelled,
    remove_workloads,
    start_workloads,
    wait_for,
)

logger = logging.getLogger(__name__)

DEMO_LABEL = "warden.demo"
DEFAULT_PREFIX = "warden-demo-"
DEMO_WORKLOADS = (
    CPU_SPIKE,
    MEMORY_SPIKE,
    FORK_BOMB,
    COMBINED,
    WELL_BEHAVED,
    PROTECTED_SPINNER,
)
# The default policy kills a CPU spinner after 15 s above the threshold plus
# up to two 5 s scrapes. The rest of the time covers a slow host.
DEFAULT_TIMEOUT_SECONDS = 60.0


class DemoError(Exception):
    """The demo cannot run: no stack, no engine or a name filter mismatch."""


def check_name_filter(settings: StackSettings, prefix: str) -> None:
    """Reject a prefix whose containers the stack's name filter would ignore."""
    sample = f"{prefix}{CPU_SPIKE.key}"
    if settings.name_regex and not re.search(settings.name_regex, sample):
        raise DemoError(
            f"the demo container {sample!r} does not match the name filter "
            f"WARDEN_CONTAINER_NAME_REGEX={settings.name_regex!r}, so the "
            "stack would ignore it; set WARDEN_DEMO_PREFIX to a prefix that "
            "matches"
        )


def describe(record: dict[str, Any], started: dict[str, Started]) -> str:
    """Format one audit record as a line of the live log."""
    name = record.get("container_name") or record.get("container_id", "")[:12]
    after = ""
    item = started.get(str(record.get("container_id")))
    if item is not None and record.get("time"):
        seconds = (parse_docker_time(record["time"]) - item.started_at).total_seconds()
        after = f" {seconds:5.1f} s after start"
    return (
        f"{record.get('time', '?')}{after}  {name}: {record.get('result')} "
        f"({record.get('violation') or record.get('alertname')}, "
        f"action {record.get('action')}) {record.get('reason', '')}"
    )


def summarize(started: Sequence[Started], records: Sequence[dict[str, Any]]) -> str:
    """Return the table of outcomes: killed, for what and when, or survived."""
    actions = first_actions(records)
    width = max(len("container"), *(len(item.name) for item in started))
    lines = [
        f"{'container':{width}}  {'expected':17} outcome",
        f"{'-' * width}  {'-' * 17} {'-' * 36}",
    ]
    for item in started:
        first = actions.get(item.id)
        expected = item.workload.violation or "survive"
        if first is not None:
            seconds = (
                parse_docker_time(first["time"]) - item.started_at
            ).total_seconds()
            outcome = (
                f"{first['result']} for {first['violation']} after {seconds:.1f} s"
            )
        elif is_running(item):
            outcome = "still running"
        else:
            outcome = "exited on its own"
        lines.append(f"{item.name:{width}}  {expected:17} {outcome}")
    return "\n".join(lines)


def all_decided(started: Sequence[Started], records: Sequence[dict[str, Any]]) -> bool:
    """Tell whether every container that should be killed has been acted on."""
    acted = first_actions(records)
    return all(item.id in acted for item in started if item.workload.violation)


def follow(
    events: EventsClient, started: dict[str, Started], records: list[dict[str, Any]]
) -> None:
    """Print and keep the new audit records about the demo's containers.

    Records about other containers are left out, because a stack without a
    name filter also acts on containers the demo did not start.
    """
    for record in events.new_records():
        if str(record.get("container_id")) in started:
            records.append(record)
            print(describe(record, started), flush=True)


def run_demo(settings: StackSettings, prefix: str, timeout: float) -> int:
    """Start the demo containers, follow the audit log and print a summary."""
    check_name_filter(settings, prefix)
    # A second demo would remove the first one's containers as leftovers.
    lock = StateLock(
        settings.state,
        file_name="demo.lock",
        holder="another demo",
        remedy="wait until it ends",
    )
    try:
        lock.acquire()
    except StackProcessError as error:
        raise DemoError(str(error)) from None
    try:
        return follow_demo(settings, prefix, timeout)
    finally:
        lock.release()


def follow_demo(settings: StackSettings, prefix: str, timeout: float) -> int:
    """Run the demo's containers and report what the stack did to them."""
    token = read_token(settings.state)
    events = EventsClient(settings.url("enforcer"), token, since=datetime.now(UTC))
    events.fetch(limit=1)

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        raise DemoError(
            f"the Docker engine is not reachable ({error}); start `make up` first"
        ) from None

    left = remove_labelled(client, DEMO_LABEL, prefix)
    if left:
        print(f"removed {left} container(s) left by an earlier demo")

    started: list[Started] = []
    records: list[dict[str, Any]] = []
    try:
        started = start_workloads(
            client, DEMO_WORKLOADS, prefix, labels={DEMO_LABEL: prefix}
        )
        by_id = {item.id: item for item in started}
        for item in started:
            print(f"started {item.name:34} {item.workload.summary}")
        print(f"following {settings.audit_path} (up to {timeout:g} s)", flush=True)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            follow(events, by_id, records)
            if all_decided(started, records):
                # Give the survivors one more scrape to be (wrongly) caught.
                wait_for(2 * settings.scrape_interval_seconds)
                follow(events, by_id, records)
                break
            wait_for(1.0)
        print()
        print(summarize(started, records), flush=True)
        if not records:
            # The demo checks its own environment's filter, which may not be
            # the one the running stack was started with.
            print(
                f"No audit record arrived for any demo container. Check that "
                f"the running stack guards names starting with {prefix!r}: "
                "run the demo with the WARDEN_CONTAINER_NAME_REGEX that "
                "`make up` was started with, and a WARDEN_DEMO_PREFIX it "
                "matches.",
                flush=True,
            )
    finally:
        remove_workloads(started)
    return 0 if all_decided(started, records) else 1


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the demo's flags."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.demo",
        description="Start abusive and well-behaved containers against a "
        "running `make up` stack and show which are killed and why.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("WARDEN_DEMO_PREFIX", DEFAULT_PREFIX),
        help="name prefix of the demo containers (WARDEN_DEMO_PREFIX)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds to wait for every abusive container to be killed",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and return its exit status."""
    logging.basicConfig(level=logging.WARNING, format="demo: %(message)s")
    arguments = build_parser().parse_args(argv)

    def interrupt(signal_number: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        settings = settings_from_environment()
        return run_demo(settings, arguments.prefix, arguments.timeout)
    except (DemoError, StackConfigError, CredentialsError, EventsError) as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted; its containers were removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
