"""Entry point of ``warden-exporter``: settings, wiring, serving, shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from prometheus_client import CollectorRegistry

from exporter.cgroup import CgroupReader
from exporter.collector import ContainerCollector
from exporter.cpu import CpuUtilizationTracker
from exporter.cpu_sampler import CpuSampler
from exporter.discovery import Discovery
from exporter.docker_api import DockerApi
from exporter.errors import HostFactError
from exporter.host import HostFacts
from exporter.http import ThreadingWsgiServer, make_app, make_http_server
from exporter.logs import configure_logging
from exporter.model import ContainerInfo, SampleSource
from exporter.settings import Settings, parse_settings
from exporter.stats_api import StatsApiReader

log = logging.getLogger(__name__)

# Time to wait for the first container list before serving, so that the
# first scrape after a start does not show an empty host.
FIRST_SYNC_TIMEOUT = 5.0


def choose_source(
    settings: Settings, client: DockerApi, containers: Sequence[ContainerInfo]
) -> SampleSource:
    """Return the reader that ``--source`` selects; ``auto`` probes cgroups.

    The probe resolves one of ``containers``, which proves that the proc
    root is the host's pid namespace.
    """
    if settings.source == "api":
        return _stats_api_reader(settings, client)
    reader = CgroupReader(settings.cgroup_root, settings.proc_root)
    if settings.source == "cgroup":
        return reader
    reason = reader.probe(containers)
    if reason is None:
        return reader
    log.warning(
        "cgroup files under %s are not readable, using the Docker stats API, "
        "which costs about one second per container: %s",
        settings.cgroup_root,
        reason,
    )
    return _stats_api_reader(settings, client)


def _stats_api_reader(settings: Settings, client: DockerApi) -> SampleSource:
    # The host's pid limit is only known when the engine runs on this host.
    pids_limit = None
    if client.base_url.startswith("unix://"):
        try:
            pids_limit = HostFacts(settings.proc_root).limits().pids_limit
        except HostFactError as error:
            log.warning(
                "host pid limit unknown, so pids_limit of unlimited "
                "containers stays unset: %s",
                error,
            )
    return StatsApiReader(
        client,
        timeout=settings.docker_timeout,
        host_memory_bytes=client.host_memory_bytes(),
        host_pids_limit=pids_limit,
    )


@dataclass
class Exporter:
    """The parts of a running exporter, started and stopped together."""

    settings: Settings
    client: DockerApi
    discovery: Discovery
    registry: CollectorRegistry
    server: ThreadingWsgiServer
    source: SampleSource
    sampler: CpuSampler | None = None

    def serve(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, then shut everything down."""
        thread = threading.Thread(
            target=self.server.serve_forever, name="warden-http", daemon=True
        )
        thread.start()
        log.info(
            "exporter listening on %s%s, reading from %s",
            self.settings.listen_address,
            self.settings.telemetry_path,
            self.source.name,
        )
        stop.wait()
        log.info("exporter stopping")
        self.server.shutdown()
        self.server.server_close()
        if self.sampler is not None:
            self.sampler.stop()
        self.discovery.stop()
        self.client.close()
        log.info("exporter stopped")


def build_exporter(settings: Settings) -> Exporter:
    """Wire the parts together, start discovery and bind the listen address.

    Raises:
        OSError: the listen address is in use or not available.
    """
    client = DockerApi(settings.docker_host, timeout=settings.docker_timeout)
    tracker = CpuUtilizationTracker()
    discovery = Discovery(
        client, resync_interval=settings.resync_interval, on_remove=tracker.forget
    )
    discovery.start()
    if not discovery.wait_synced(FIRST_SYNC_TIMEOUT):
        log.warning(
            "no container list from %s within %s s; serving while retrying",
            client.base_url,
            FIRST_SYNC_TIMEOUT,
        )
    source = choose_source(settings, client, discovery.containers())
    sampler = start_sampler(settings, discovery, source, tracker)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        ContainerCollector(
            discovery,
            source,
            tracker,
            settings.label_allowlist,
            sampler=sampler,
        )
    )
    app = make_app(registry, settings.telemetry_path, source.name)
    try:
        server = make_http_server(settings.listen_host, settings.listen_port, app)
    except OSError:
        if sampler is not None:
            sampler.stop()
        discovery.stop()
        client.close()
        raise
    return Exporter(settings, client, discovery, registry, server, source, sampler)


def start_sampler(
    settings: Settings,
    discovery: Discovery,
    source: SampleSource,
    tracker: CpuUtilizationTracker,
) -> CpuSampler | None:
    """Start the CPU sampler when the source is cgroup files and it is on."""
    if settings.cpu_sample_interval == 0:
        return None
    if not isinstance(source, CgroupReader):
        log.info(
            "CPU sampler is off with the stats API source, whose reads take "
            "about a second each; utilization is measured between scrapes"
        )
        return None
    sampler = CpuSampler(discovery.containers, source, settings.cpu_sample_interval)

    def forget(container_id: str) -> None:
        tracker.forget(container_id)
        sampler.forget(container_id)

    discovery.on_remove = forget
    discovery.on_add = sampler.add
    sampler.start()
    return sampler


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter until SIGTERM or Ctrl-C; return the exit status."""
    settings = parse_settings(argv)
    configure_logging(settings.log_level, settings.log_format)
    try:
        exporter = build_exporter(settings)
    except OSError as error:
        log.error(
            "cannot listen on %s: %s; choose another --web.listen-address",
            settings.listen_address,
            error,
        )
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    exporter.serve(stop)
    return 0
