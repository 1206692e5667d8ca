"""Measure the exporter's scrape cost against the Docker stats API.

For each container count, start that many idle busybox containers (no
network), then measure on the same containers:

- the exporter (a real ``python -m exporter`` process reading cgroup files,
  scraped with the request headers of Prometheus 2.42):
  wall time of a scrape of /metrics at p50 and p95, CPU seconds per scrape
  and the process's resident memory;
- the stats-API approach: one-shot stats requests, ten at a time, for the
  whole host, and the ratio of the two;
- the standing cost of the background CPU sampler: CPU seconds per second
  of the exporter while nothing scrapes it, next to a second exporter
  started with ``--cpu.sample-interval=0`` over the same window.

The stats API costs about a second per container on some hosts. Above
``--stats-sample`` containers only that many are requested and the time is
scaled to the full count, and the output states that it was scaled.

Run: .venv/bin/python benchmarks/scrape.py [--counts 10,100,300]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import docker
import docker.errors
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("WARDEN_TEST_IMAGE", "warden-busybox:latest")
BENCH_LABEL = "warden.bench"
STATS_CONCURRENCY = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))
    return ordered[index]


def start_containers(
    client: docker.DockerClient, prefix: str, start: int, count: int
) -> list[str]:
    """Start ``count`` idle containers named ``prefix-N``; return their IDs."""

    def run(index: int) -> str:
        container = client.containers.run(
            IMAGE,
            ["sleep", "3600"],
            name=f"{prefix}-{index}",
            detach=True,
            network_mode="none",
            labels={BENCH_LABEL: prefix},
        )
        return str(container.id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(run, range(start, start + count)))


def remove_containers(client: docker.DockerClient, prefix: str) -> None:
    """Remove every container this run started, found by its label."""
    containers = client.containers.list(
        all=True, filters={"label": f"{BENCH_LABEL}={prefix}"}
    )

    def remove(container: Any) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(remove, containers))
    print(f"removed {len(containers)} containers labelled {BENCH_LABEL}={prefix}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ExporterProcess:
    """A ``python -m exporter`` child on a loopback port."""

    def __init__(self, log_path: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--source=cgroup",
                "--log.level=warning",
                *flags,
            ],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def get(self) -> str:
        """Scrape with the request headers of Prometheus 2.42."""
        request = urllib.request.Request(self.url, headers=PROMETHEUS_HEADERS)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
        return str(body.decode())

    def wait_for(self, ids: set[str], timeout: float = 120.0) -> None:
        """Wait until the info metric lists every container in ``ids``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen = info_ids(self.get())
            except OSError:
                seen = set()
            if ids <= seen:
                return
            time.sleep(0.5)
        raise SystemExit(f"exporter did not list all {len(ids)} containers")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / CLOCK_TICKS

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def info_ids(text: str) -> set[str]:
    ids = set()
    for family in text_string_to_metric_families(text):
        if family.name == "docker_container_info":
            ids.update(sample.labels["id"] for sample in family.samples)
    return ids


def gauge(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return float(family.samples[0].value)
    return float("nan")


def measure_exporter(exporter: ExporterProcess, scrapes: int) -> dict[str, float]:
    """Scrape repeatedly; return wall-time percentiles, CPU and memory."""
    exporter.get()  # sets the CPU baselines, as a running exporter has them
    times = []
    collect_times = []
    cpu_before = exporter.cpu_seconds()
    for _ in range(scrapes):
        started = time.perf_counter()
        text = exporter.get()
        times.append(time.perf_counter() - started)
        collect_times.append(gauge(text, "warden_exporter_collect_duration_seconds"))
    cpu = exporter.cpu_seconds() - cpu_before
    return {
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "collect_p50": statistics.median(collect_times),
        "cpu_per_scrape": cpu / scrapes,
        "rss": exporter.rss_bytes(),
        "host_containers": gauge(text, "warden_exporter_containers"),
    }


def measure_idle(exporters: list[ExporterProcess], seconds: float) -> list[float]:
    """Return each exporter's CPU seconds per second over one unscraped window."""
    before = [exporter.cpu_seconds() for exporter in exporters]
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return [
        (exporter.cpu_seconds() - first) / elapsed
        for exporter, first in zip(exporters, before, strict=True)
    ]


def measure_stats_api(ids: list[str]) -> float:
    """Return the wall time of one-shot stats of ``ids``, ten at a time."""
    api = docker.APIClient(version="auto", timeout=120, max_pool_size=STATS_CONCURRENCY)

    def stats(container_id: str) -> None:
        api.stats(container_id, decode=False, stream=False, one_shot=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=STATS_CONCURRENCY) as pool:
        list(pool.map(stats, ids))
    elapsed = time.perf_counter() - started
    api.close()
    return elapsed


def run_count(
    exporter: ExporterProcess,
    unsampled: ExporterProcess,
    ids: list[str],
    args: argparse.Namespace,
) -> None:
    count = len(ids)
    exporter.wait_for(set(ids))
    unsampled.wait_for(set(ids))
    sampled_idle, unsampled_idle = measure_idle(
        [exporter, unsampled], args.idle_seconds
    )
    result = measure_exporter(exporter, args.scrapes)
    stats_sample = args.stats_sample
    sampled = ids[:stats_sample] if count > stats_sample else ids
    stats_time = measure_stats_api(sampled) * count / len(sampled)
    note = (
        f"sampled {len(sampled)} of {count}, scaled to {count}"
        if len(sampled) < count
        else "all containers"
    )
    host = int(result["host_containers"])
    print(
        f"{count:4d} containers ({host} on the host)"
        f" | exporter p50 {result['p50'] * 1e3:6.2f} ms"
        f"  p95 {result['p95'] * 1e3:6.2f} ms"
        f"  collect p50 {result['collect_p50'] * 1e3:6.2f} ms"
        f"  {result['p50'] / host * 1e6:5.1f} us/container"
        f"  cpu {result['cpu_per_scrape'] * 1e3:6.2f} ms/scrape"
        f"  rss {result['rss'] / 2**20:5.1f} MiB"
        f" | stats API {stats_time:7.2f} s ({note})"
        f" | ratio {stats_time / result['p50']:.0f}x",
        flush=True,
    )
    print(
        f"{count:4d} containers, idle {args.idle_seconds:.0f} s"
        f" | exporter with sampler {sampled_idle * 1e3:6.2f} ms CPU/s"
        f"  without {unsampled_idle * 1e3:6.2f} ms CPU/s"
        f"  sampler {(sampled_idle - unsampled_idle) * 1e3:6.2f} ms CPU/s",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--counts",
        default="10,100,300",
        help="comma-separated container counts, ascending (default: 10,100,300)",
    )
    parser.add_argument(
        "--scrapes", type=int, default=50, help="scrapes per count (default: 50)"
    )
    parser.add_argument(
        "--stats-sample",
        type=int,
        default=100,
        help="maximum containers to request from the stats API per count; more "
        "are scaled from this sample (default: 100)",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=20.0,
        help="length of the unscraped window that measures the CPU sampler's "
        "standing cost (default: 20)",
    )
    return parser.parse_args()


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    counts = sorted(int(item) for item in args.counts.split(","))
    client = docker.from_env(timeout=120)
    client.ping()
    prefix = f"warden-bench-{uuid.uuid4().hex[:8]}"
    signal.signal(signal.SIGTERM, interrupt)
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"{prefix}-exporter.log"
    print(f"scrape benchmark: {args.scrapes} scrapes per count, prefix {prefix}")
    print(f"exporter log: {log_path}")
    exporter = ExporterProcess(log_path)
    unsampled_log = log_path.with_name(f"{prefix}-exporter-unsampled.log")
    unsampled = ExporterProcess(unsampled_log, "--cpu.sample-interval=0")
    ids: list[str] = []
    try:
        for count in counts:
            ids += start_containers(client, prefix, len(ids), count - len(ids))
            run_count(exporter, unsampled, ids, args)
    except KeyboardInterrupt:
        print("interrupted; removing containers")
        return 130
    finally:
        exporter.stop()
        unsampled.stop()
        remove_containers(client, prefix)
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
