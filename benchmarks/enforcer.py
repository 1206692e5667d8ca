"""Measure the enforcer: time to a dead container, and duplicate throughput.

Starts a real enforcer (the ``warden-enforcer`` console script, gunicorn,
on 127.0.0.1) and idle busybox containers (no network), then measures:

- kill latency: one notification with one kill alert per container, sent
  one after another. "Response" is the time from sending the request to the
  2xx response, which comes after Docker has killed the container and the
  record is fsynced. "Exited" adds polling the engine until the container
  is no longer running;
- the naive alternative, ``docker kill <id>`` through the CLI once per
  alert, and the Docker API's kill call alone, the floor under any
  enforcer, each on its own containers, taking turns with the enforcer;
- the duplicate path: one notification, already decided, re-delivered in
  a bounded loop over keep-alive connections, in requests per second;
- stalled clients: for each count of ``--stalled``, that many connections
  send part of a request's headers and stop, and then one duplicate
  delivery is timed from sending to its response;
- with ``--profile``, the steps of one kill decision: the enforcer's
  decision code runs in this process on its own containers, and each
  Docker call, the audit append with its fsync and the whole decision are
  timed.

Run: .venv/bin/python benchmarks/enforcer.py [--containers 50] [--profile]
     [--stalled 12,64,200]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

import docker
import docker.errors
from prometheus_client import CollectorRegistry

# Python puts this script's folder first on the path, where this file's
# own name would shadow the enforcer package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from enforcer.audit import AuditLog
from enforcer.decisions import Decider, NotificationContext
from enforcer.docker_api import EngineDocker
from enforcer.metrics import EnforcerMetrics
from enforcer.payload import parse_notification
from enforcer.ratelimit import SlidingWindowLimiter
from enforcer.settings import ProtectRules

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("WARDEN_TEST_IMAGE", "warden-busybox:latest")
BENCH_LABEL = "warden.bench"
ENFORCER = str(Path(sys.executable).parent / "warden-enforcer")
P = ParamSpec("P")
R = TypeVar("R")


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def now_rfc3339() -> str:
    moment = datetime.now(UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


def notification(container_id: str) -> bytes:
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "ContainerCPUSpike",
            "action": "kill",
            "violation": "cpu_spike",
            "severity": "critical",
            "id": container_id,
            "name": "bench",
        },
        "annotations": {"summary": "benchmark"},
        "startsAt": now_rfc3339(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": secrets.token_hex(8),
    }
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "warden",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [alert],
    }
    return json.dumps(payload).encode()


@contextlib.contextmanager
def containers(client: docker.DockerClient, count: int) -> Iterator[list[str]]:
    """Start ``count`` idle containers and remove exactly those afterwards."""
    run_id = uuid.uuid4().hex[:8]
    started: list[str] = []

    def start(index: int) -> str:
        container = client.containers.run(
            IMAGE,
            ["sh", "-c", "sleep 3600"],
            detach=True,
            network_mode="none",
            name=f"warden-bench-{run_id}-{index}",
            labels={BENCH_LABEL: run_id},
        )
        return str(container.id)

    try:
        with ThreadPoolExecutor(8) as pool:
            started.extend(pool.map(start, range(count)))
        yield started
    finally:
        for container_id in started:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container_id, force=True)


@contextlib.contextmanager
def enforcer(folder: Path, token: str) -> Iterator[int]:
    """Run the enforcer's console script on a free loopback port."""
    token_file = folder / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    process = subprocess.Popen(
        [
            ENFORCER,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--webhook.token-file={token_file}",
            f"--audit.path={folder / 'audit.jsonl'}",
            "--actions.max-per-minute=100000",
            "--log.level=warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "enforcer.log", "wb"),  # noqa: SIM115
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        "enforcer did not start:\n"
                        + (folder / "enforcer.log").read_text()
                    ) from None
                time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def post(connection: http.client.HTTPConnection, body: bytes, token: str) -> int:
    connection.request(
        "POST",
        "/webhook",
        body=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        },
    )
    response = connection.getresponse()
    response.read()
    return response.status


def wait_exited(client: docker.DockerClient, container_id: str) -> None:
    while client.api.inspect_container(container_id)["State"]["Running"]:
        time.sleep(0.001)


def kill_via_enforcer(
    client: docker.DockerClient,
    connection: http.client.HTTPConnection,
    token: str,
    container_id: str,
) -> tuple[float, float]:
    """Return seconds to the webhook's response and to the container's exit."""
    body = notification(container_id)
    started = time.perf_counter()
    status = post(connection, body, token)
    responded = time.perf_counter()
    wait_exited(client, container_id)
    exited = time.perf_counter()
    if status != 200:
        raise SystemExit(f"webhook returned {status} for {container_id}")
    return responded - started, exited - started


def kill_via_cli(
    client: docker.DockerClient, docker_cli: str, container_id: str
) -> float:
    """Return seconds until exit with ``docker kill`` run once per alert."""
    started = time.perf_counter()
    subprocess.run([docker_cli, "kill", container_id], check=True, capture_output=True)
    wait_exited(client, container_id)
    return time.perf_counter() - started


def kill_via_api(client: docker.DockerClient, container_id: str) -> float:
    """Return seconds until exit with the Docker API's kill call alone."""
    started = time.perf_counter()
    client.api.kill(container_id, signal="SIGKILL")
    wait_exited(client, container_id)
    return time.perf_counter() - started


def measure_duplicates(
    port: int, token: str, body: bytes, requests: int, threads: int
) -> float:
    """Re-deliver one decided notification; return requests per second."""
    per_thread = requests // threads
    failures: list[int] = []

    def loop() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(per_thread):
            status = post(connection, body, token)
            if status != 200:
                failures.append(status)
        connection.close()

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} duplicate deliveries failed: {failures[:3]}")
    return per_thread * threads / elapsed


# A request line and headers without the blank line that ends them.
PARTIAL_HEADERS = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"


def measure_stalled(port: int, token: str, body: bytes, stalled: int) -> float:
    """Time one delivery sent after ``stalled`` clients stopped mid-headers."""
    sockets = []
    try:
        for _ in range(stalled):
            client = socket.create_connection(("127.0.0.1", port), timeout=60)
            client.sendall(PARTIAL_HEADERS)
            sockets.append(client)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        started = time.perf_counter()
        status = post(connection, body, token)
        elapsed = time.perf_counter() - started
        connection.close()
    finally:
        for client in sockets:
            client.close()
    if status != 200:
        raise SystemExit(f"delivery beside {stalled} stalled clients got {status}")
    return elapsed


def timed(call: Callable[P, R], timings: list[float]) -> Callable[P, R]:
    """Wrap ``call`` so that each call appends its duration to ``timings``."""

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            timings.append(time.perf_counter() - started)

    return wrapper


def profile_decisions(folder: Path, ids: list[str]) -> dict[str, list[float]]:
    """Kill each container through the decision code; return step timings."""
    steps: dict[str, list[float]] = {
        name: [] for name in ("inspect", "usage", "kill", "append", "decision")
    }
    backend = EngineDocker()
    audit = AuditLog(folder / "profile.jsonl")
    for name in ("inspect", "usage", "kill"):
        setattr(backend, name, timed(getattr(backend, name), steps[name]))
    audit.append = timed(audit.append, steps["append"])  # type: ignore[method-assign]
    decider = Decider(
        docker=backend,
        audit=audit,
        metrics=EnforcerMetrics(CollectorRegistry()),
        limiter=SlidingWindowLimiter(100_000),
        protect=ProtectRules(),
    )
    try:
        for container_id in ids:
            parsed = parse_notification(json.loads(notification(container_id)))
            context = NotificationContext(
                request_id=uuid.uuid4().hex,
                received_at=time.monotonic(),
                receiver=parsed.receiver,
                group_key=parsed.group_key,
                truncated_alerts=0,
            )
            started = time.perf_counter()
            (record,) = decider.handle(parsed.alerts, context)
            steps["decision"].append(time.perf_counter() - started)
            if record["result"] != "killed":
                raise SystemExit(
                    f"profile: kill of {container_id} was recorded as"
                    f" {record['result']!r}, expected 'killed'"
                )
    finally:
        audit.close()
        backend.close()
    return steps


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def milliseconds(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(values, 0.99) * 1000:.1f} ms, "
        f"mean {statistics.mean(values) * 1000:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--containers",
        type=int,
        default=50,
        help="containers killed by each method (default: 50)",
    )
    parser.add_argument(
        "--duplicates",
        type=int,
        default=4000,
        help="duplicate deliveries sent (default: 4000)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time the steps of a kill decision on as many containers",
    )
    parser.add_argument(
        "--stalled",
        default="12,64,200",
        help="comma-separated counts of stalled clients (default: 12,64,200)",
    )
    args = parser.parse_args()
    stalled_counts = [int(count) for count in args.stalled.split(",") if count]
    # SIGTERM ends the run through the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(143))

    client = docker.from_env()
    token = secrets.token_hex(16)
    version = client.version()
    print(
        f"machine: {machine()}, Docker {version['Version']} "
        f"(API {version['ApiVersion']})"
    )

    docker_cli = shutil.which("docker")
    response_times: list[float] = []
    exit_times: list[float] = []
    cli_times: list[float] = []
    api_times: list[float] = []
    steps: dict[str, list[float]] = {}
    count = args.containers
    ways = 4 if args.profile else 3
    with (
        tempfile.TemporaryDirectory(prefix="warden-bench-") as folder,
        enforcer(Path(folder), token) as port,
        containers(client, ways * count) as ids,
    ):
        # The three ways take turns, so that load from other users of the
        # engine during the run falls on all of them alike.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for index in range(count):
            responded, exited = kill_via_enforcer(client, connection, token, ids[index])
            response_times.append(responded)
            exit_times.append(exited)
            if docker_cli is not None:
                cli_times.append(kill_via_cli(client, docker_cli, ids[count + index]))
            api_times.append(kill_via_api(client, ids[2 * count + index]))

        # A kill alert already decided: every re-delivery is a duplicate.
        decided = notification(ids[0])
        post(connection, decided, token)
        connection.close()
        single = measure_duplicates(port, token, decided, args.duplicates, 1)
        parallel = measure_duplicates(port, token, decided, args.duplicates, 4)
        stalled = {
            count: measure_stalled(port, token, decided, count)
            for count in stalled_counts
        }
        if args.profile:
            steps = profile_decisions(Path(folder), ids[3 * count :])

    print(
        f"kill via enforcer, response ({args.containers} containers): "
        f"{milliseconds(response_times)}"
    )
    print(f"kill via enforcer, until exited: {milliseconds(exit_times)}")
    print(f"kill via docker CLI, until exited: {milliseconds(cli_times)}")
    print(f"kill via Docker API directly, until exited: {milliseconds(api_times)}")
    print(f"duplicate deliveries, 1 connection: {single:.0f} requests/s")
    print(f"duplicate deliveries, 4 connections: {parallel:.0f} requests/s")
    for count, seconds in stalled.items():
        print(f"delivery beside {count} stalled clients: {seconds:.2f} s")
    for name, timings in steps.items():
        print(f"profile, {name}: {milliseconds(timings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
