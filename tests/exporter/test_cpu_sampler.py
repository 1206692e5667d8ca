"""The background CPU sampler, driven by a fake clock and counter source."""

from __future__ import annotations

import logging
import threading

import pytest
from prometheus_client import CollectorRegistry

from exporter.collector import ContainerCollector
from exporter.cpu import CpuUtilizationTracker
from exporter.cpu_sampler import CpuSampler
from exporter.model import ContainerGoneError, ContainerInfo, ContainerSample
from tests.exporter.fakes import (
    HEX_A,
    HEX_B,
    FakeDiscovery,
    FakeSource,
    make_info,
    make_sample,
    scrape_registry,
    value_of,
)
from tests.services import wait_until

INTERVAL = 1.0


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class FakeCounters:
    """CPU usage counters per container, read against the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.usage: dict[str, float | None] = {}
        self.gone: set[str] = set()
        self.reads: list[str] = []

    def read_cpu(self, container: ContainerInfo) -> ContainerSample:
        self.reads.append(container.id)
        if container.id in self.gone:
            raise ContainerGoneError(f"container {container.id} is gone")
        usage = self.usage.get(container.id)
        if usage is None:
            return ContainerSample(
                cpu_clock_seconds=self.clock(),
                errors={"cgroup_read": "cpuacct.usage does not exist"},
            )
        return ContainerSample(cpu_usage_seconds=usage, cpu_clock_seconds=self.clock())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def counters(clock: FakeClock) -> FakeCounters:
    return FakeCounters(clock)


def build_sampler(
    discovery: FakeDiscovery, counters: FakeCounters, clock: FakeClock
) -> CpuSampler:
    return CpuSampler(discovery.containers, counters, INTERVAL, clock=clock)


def sampler_with_value(
    discovery: FakeDiscovery, counters: FakeCounters, clock: FakeClock, cores: float
) -> CpuSampler:
    """Return a sampler whose two ticks measured ``cores`` for container A."""
    sampler = build_sampler(discovery, counters, clock)
    counters.usage[HEX_A] = 10.0
    sampler.tick()
    tick_with_usage(sampler, counters, clock, 10.0 + cores * INTERVAL)
    return sampler


def tick_with_usage(
    sampler: CpuSampler, counters: FakeCounters, clock: FakeClock, usage: float
) -> None:
    """Advance the clock one interval, set A's counter, and tick."""
    clock.now += INTERVAL
    counters.usage[HEX_A] = usage
    sampler.tick()


def test_first_tick_is_only_baseline(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = build_sampler(FakeDiscovery([make_info(HEX_A, "a")]), counters, clock)
    counters.usage[HEX_A] = 10.0
    sampler.tick()
    assert sampler.cores(HEX_A) is None


def test_two_ticks_give_cores(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = sampler_with_value(
        FakeDiscovery([make_info(HEX_A, "a")]), counters, clock, 0.5
    )
    assert sampler.cores(HEX_A) == pytest.approx(0.5)


def test_value_kept_up_to_max_age(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = sampler_with_value(
        FakeDiscovery([make_info(HEX_A, "a")]), counters, clock, 1.0
    )
    clock.now += sampler.max_age
    assert sampler.cores(HEX_A) == pytest.approx(1.0)


def test_stale_value_dropped(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = sampler_with_value(
        FakeDiscovery([make_info(HEX_A, "a")]), counters, clock, 1.0
    )
    clock.now += sampler.max_age + 0.001
    assert sampler.max_age == 3 * INTERVAL
    assert sampler.cores(HEX_A) is None


def test_counter_reset_gives_no_value(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = build_sampler(FakeDiscovery([make_info(HEX_A, "a")]), counters, clock)
    counters.usage[HEX_A] = 5.0
    sampler.tick()
    tick_with_usage(sampler, counters, clock, 6.0)
    # The container restarted under the same ID: its counter starts near 0.
    tick_with_usage(sampler, counters, clock, 0.2)
    after_reset = sampler.cores(HEX_A)
    tick_with_usage(sampler, counters, clock, 0.45)
    assert after_reset is None
    assert sampler.cores(HEX_A) == pytest.approx(0.25)


def test_failed_read_gives_no_value(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = build_sampler(FakeDiscovery([make_info(HEX_A, "a")]), counters, clock)
    counters.usage[HEX_A] = 5.0
    sampler.tick()
    tick_with_usage(sampler, counters, clock, 6.0)
    clock.now += INTERVAL
    counters.usage[HEX_A] = None
    sampler.tick()
    assert sampler.cores(HEX_A) is None


def test_removed_container_forgotten(clock: FakeClock, counters: FakeCounters) -> None:
    discovery = FakeDiscovery([make_info(HEX_A, "a")])
    sampler = build_sampler(discovery, counters, clock)
    counters.usage[HEX_A] = 5.0
    sampler.tick()
    tick_with_usage(sampler, counters, clock, 6.0)
    discovery.items = []
    clock.now += INTERVAL
    sampler.tick()
    removed = sampler.cores(HEX_A)

    # Back under the same ID, the old baseline must not span the gap.
    discovery.items = [make_info(HEX_A, "a")]
    tick_with_usage(sampler, counters, clock, 100.0)
    assert removed is None
    assert sampler.cores(HEX_A) is None


def test_gone_container_forgotten(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = build_sampler(FakeDiscovery([make_info(HEX_A, "a")]), counters, clock)
    counters.usage[HEX_A] = 5.0
    sampler.tick()
    tick_with_usage(sampler, counters, clock, 6.0)
    counters.gone.add(HEX_A)
    clock.now += INTERVAL
    sampler.tick()
    assert sampler.cores(HEX_A) is None


def test_forget_drops_value(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = build_sampler(FakeDiscovery([make_info(HEX_A, "a")]), counters, clock)
    counters.usage[HEX_A] = 5.0
    sampler.tick()
    tick_with_usage(sampler, counters, clock, 6.0)
    sampler.forget(HEX_A)
    assert sampler.cores(HEX_A) is None


def test_added_container_valued_next_tick(
    clock: FakeClock, counters: FakeCounters
) -> None:
    discovery = FakeDiscovery([])
    sampler = build_sampler(discovery, counters, clock)
    sampler.tick()

    # Discovery puts a started container in its cache, then calls add().
    info = make_info(HEX_B, "b")
    discovery.items = [info]
    counters.usage[HEX_B] = 1.0
    clock.now += 0.3
    sampler.add(info)
    clock.now += INTERVAL
    counters.usage[HEX_B] = 1.5
    sampler.tick()
    assert sampler.cores(HEX_B) == pytest.approx(0.5)


def young_container(
    clock: FakeClock, counters: FakeCounters
) -> tuple[CpuSampler, ContainerInfo]:
    """Return a sampler that took container B's baseline at its start event."""
    info = make_info(HEX_B, "b")
    sampler = build_sampler(FakeDiscovery([info]), counters, clock)
    counters.usage[HEX_B] = 1.0
    sampler.add(info)
    return sampler, info


def scraped_read(usage: float, clock: FakeClock) -> ContainerSample:
    return ContainerSample(cpu_usage_seconds=usage, cpu_clock_seconds=clock())


def test_scrape_read_values_young_container(
    clock: FakeClock, counters: FakeCounters
) -> None:
    sampler, _ = young_container(clock, counters)
    clock.now += 0.6 * INTERVAL
    assert sampler.cores(HEX_B) is None
    cores = sampler.cores(HEX_B, scraped=scraped_read(1.3, clock))
    assert cores == pytest.approx(0.3 / 0.6)


def test_scrape_read_too_soon_ignored(clock: FakeClock, counters: FakeCounters) -> None:
    sampler, _ = young_container(clock, counters)
    clock.now += 0.2 * INTERVAL
    too_soon = sampler.cores(HEX_B, scraped=scraped_read(1.2, clock))
    clock.now += 0.8 * INTERVAL
    counters.usage[HEX_B] = 1.5
    sampler.tick()
    assert too_soon is None
    # The tick's interval still starts at the baseline, not the scrape.
    assert sampler.cores(HEX_B) == pytest.approx(0.5)


def test_scrape_read_ignored_once_valued(
    clock: FakeClock, counters: FakeCounters
) -> None:
    discovery = FakeDiscovery([make_info(HEX_A, "a")])
    sampler = sampler_with_value(discovery, counters, clock, 0.25)
    clock.now += 0.9 * INTERVAL
    cores = sampler.cores(HEX_A, scraped=scraped_read(100.0, clock))
    assert cores == pytest.approx(0.25)
    clock.now += 0.1 * INTERVAL
    counters.usage[HEX_A] = 10.5
    sampler.tick()
    assert sampler.cores(HEX_A) == pytest.approx(0.25)


def test_scrape_read_older_than_tick_ignored(
    clock: FakeClock, counters: FakeCounters
) -> None:
    sampler, _ = young_container(clock, counters)
    clock.now += 0.7 * INTERVAL
    stale = scraped_read(1.1, clock)
    # A tick reads the counter after the scrape did, and takes it as the
    # new baseline before the scrape's read arrives.
    clock.now += 0.2 * INTERVAL
    sampler.forget(HEX_B)
    counters.usage[HEX_B] = 1.2
    sampler.tick()
    assert sampler.cores(HEX_B, scraped=stale) is None
    clock.now += INTERVAL
    counters.usage[HEX_B] = 1.6
    sampler.tick()
    assert sampler.cores(HEX_B) == pytest.approx(0.4)


def test_scrape_read_needs_baseline(clock: FakeClock, counters: FakeCounters) -> None:
    sampler = build_sampler(FakeDiscovery([]), counters, clock)
    clock.now += INTERVAL
    assert sampler.cores(HEX_A, scraped=scraped_read(5.0, clock)) is None
    clock.now += INTERVAL
    assert sampler.cores(HEX_A, scraped=scraped_read(6.0, clock)) is None


def test_add_logs_source_bug(
    clock: FakeClock, counters: FakeCounters, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenCounters(FakeCounters):
        def read_cpu(self, container: ContainerInfo) -> ContainerSample:
            raise RuntimeError("reader bug")

    sampler = CpuSampler(lambda: [], BrokenCounters(clock), INTERVAL, clock=clock)
    with caplog.at_level(logging.ERROR, logger="exporter.cpu_sampler"):
        sampler.add(make_info(HEX_A, "a"))
    assert "baseline read of container" in caplog.text
    assert HEX_A in caplog.text


def test_scrape_does_not_disturb_tracker(
    clock: FakeClock, counters: FakeCounters
) -> None:
    discovery = FakeDiscovery([make_info(HEX_A, "a")])
    sampler = sampler_with_value(discovery, counters, clock, 0.25)

    # The scrape's own reads show a different, busier counter each time.
    scrape_source = FakeSource()
    scrape_source.samples[HEX_A] = make_sample(usage=50.0)
    tracker = CpuUtilizationTracker()
    collector = ContainerCollector(discovery, scrape_source, tracker, sampler=sampler)
    registry = CollectorRegistry()
    registry.register(collector)
    ratios = []
    for step in range(3):
        scrape_source.samples[HEX_A] = make_sample(usage=50.0 + step)
        values = scrape_registry(registry)
        ratios.append(
            value_of(values, "docker_container_cpu_utilization_ratio", id=HEX_A)
        )
        usage = value_of(values, "docker_container_cpu_usage_seconds_total", id=HEX_A)
        assert usage == 50.0 + step

    # 0.25 cores of a 0.5-core limit, from the sampler alone.
    assert ratios == [pytest.approx(0.5)] * 3
    assert sampler.cores(HEX_A) == pytest.approx(0.25)
    assert tracker.update(HEX_A, make_sample(usage=60.0, clock=1e6)) is None


def test_stale_sampler_value_unpublished(
    clock: FakeClock, counters: FakeCounters
) -> None:
    discovery = FakeDiscovery([make_info(HEX_A, "a")])
    sampler = sampler_with_value(discovery, counters, clock, 0.25)
    clock.now += 10 * INTERVAL
    collector = ContainerCollector(
        discovery, FakeSource(), CpuUtilizationTracker(), sampler=sampler
    )
    registry = CollectorRegistry()
    registry.register(collector)
    values = scrape_registry(registry)
    assert value_of(values, "docker_container_cpu_utilization_ratio", id=HEX_A) is None
    assert value_of(values, "docker_container_pids", id=HEX_A) == 3


def test_concurrent_samples_stay_in_order() -> None:
    # The counter grows by 1 per read, and each read advances a real clock,
    # so any read that reached the tracker out of order would show as a
    # reset and leave no value.
    lock = threading.Lock()
    state = {"usage": 0.0, "clock": 0.0}

    class CountingCounters:
        def read_cpu(self, container: ContainerInfo) -> ContainerSample:
            with lock:
                state["usage"] += 1.0
                state["clock"] += 1.0
                return ContainerSample(
                    cpu_usage_seconds=state["usage"],
                    cpu_clock_seconds=state["clock"],
                )

    info = make_info(HEX_A, "a")
    sampler = CpuSampler(lambda: [info], CountingCounters(), INTERVAL)

    def hammer() -> None:
        for _ in range(200):
            sampler.sample(info)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sampler.cores(HEX_A) == pytest.approx(1.0)


def test_thread_ticks_until_stopped(counters: FakeCounters) -> None:
    info = make_info(HEX_A, "a")
    counters.usage[HEX_A] = 1.0
    sampler = CpuSampler(lambda: [info], counters, 0.05)
    sampler.start()
    try:
        wait_until(lambda: len(counters.reads) >= 3, timeout=10, message="3 ticks")
    finally:
        sampler.stop()
    assert not sampler.running


def test_zero_interval_rejected(counters: FakeCounters) -> None:
    with pytest.raises(ValueError, match="above 0"):
        CpuSampler(lambda: [], counters, 0)


def test_read_soon_after_baseline_skipped(
    clock: FakeClock, counters: FakeCounters
) -> None:
    # A baseline taken at a start event, then a tick a few milliseconds
    # later: that interval would show either no CPU or a full core.
    discovery = FakeDiscovery([make_info(HEX_A, "a")])
    sampler = build_sampler(discovery, counters, clock)
    counters.usage[HEX_A] = 10.0
    sampler.add(discovery.items[0])
    clock.now += 0.005
    counters.usage[HEX_A] = 10.005
    sampler.tick()
    too_soon = sampler.cores(HEX_A)
    clock.now += INTERVAL
    counters.usage[HEX_A] = 10.255
    sampler.tick()
    assert too_soon is None
    assert sampler.cores(HEX_A) == pytest.approx(0.255 / 1.005)


def test_start_takes_first_reads(counters: FakeCounters) -> None:
    info = make_info(HEX_A, "a")
    counters.usage[HEX_A] = 1.0
    sampler = CpuSampler(lambda: [info], counters, 60.0)
    sampler.start()
    try:
        assert counters.reads == [HEX_A]
    finally:
        sampler.stop()
