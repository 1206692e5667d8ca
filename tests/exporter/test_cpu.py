"""CPU utilization from consecutive samples."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.cpu import CpuUtilizationTracker
from exporter.model import ContainerSample

ID_A = "a" * 64
ID_B = "b" * 64


def sample(
    usage: float | None, clock: float | None, limit: float | None = 4.0
) -> ContainerSample:
    return ContainerSample(
        cpu_usage_seconds=usage, cpu_clock_seconds=clock, cpu_limit_cores=limit
    )


def test_first_sample_is_only_baseline() -> None:
    tracker = CpuUtilizationTracker()
    assert tracker.update(ID_A, sample(723.671739199, 5933.305)) is None


def test_second_sample_gives_cores() -> None:
    tracker = CpuUtilizationTracker()
    # 1.0e9 ns then 1.4e9 ns of CPU, 1.0e13 then 1.0004e13 ns over 4 CPUs.
    tracker.update(ID_A, sample(1.0, 1.0e13 / 4 / 1e9))
    result = tracker.update(ID_A, sample(1.4, 1.0004e13 / 4 / 1e9))
    assert result is not None
    assert result.cores == pytest.approx(0.4)
    assert result.ratio == pytest.approx(0.1)


def test_full_use_of_limit_is_one() -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(10.0, 100.0, limit=4.0))
    result = tracker.update(ID_A, sample(14.0, 101.0, limit=4.0))
    assert result is not None
    assert result.cores == pytest.approx(4.0)
    assert result.ratio == pytest.approx(1.0)


def test_unlimited_ratio_uses_host_cpus() -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(10.0, 100.0, limit=22.0))
    result = tracker.update(ID_A, sample(14.0, 101.0, limit=22.0))
    assert result is not None
    assert result.ratio == pytest.approx(0.1818, abs=1e-4)


def test_counter_reset_gives_no_value() -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(5.0, 100.0))
    assert tracker.update(ID_A, sample(0.2, 101.0)) is None


def test_reset_read_becomes_baseline() -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(5.0, 100.0))
    tracker.update(ID_A, sample(0.2, 101.0))
    result = tracker.update(ID_A, sample(0.7, 102.0))
    assert result is not None
    assert result.cores == pytest.approx(0.5)


@pytest.mark.parametrize("clock", [100.0, 99.0])
def test_clock_not_advancing_gives_no_value(clock: float) -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(5.0, 100.0))
    assert tracker.update(ID_A, sample(6.0, clock)) is None
    result = tracker.update(ID_A, sample(6.5, clock + 1.0))
    assert result is not None
    assert result.cores == pytest.approx(0.5)


@pytest.mark.parametrize("limit", [None, 0.0])
def test_no_limit_gives_no_ratio(limit: float | None) -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(1.0, 100.0, limit=limit))
    result = tracker.update(ID_A, sample(2.0, 101.0, limit=limit))
    assert result is not None
    assert result.cores == pytest.approx(1.0)
    assert result.ratio is None


@pytest.mark.parametrize(("usage", "clock"), [(None, 101.0), (2.0, None)])
def test_incomplete_sample_keeps_baseline(
    usage: float | None, clock: float | None
) -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(1.0, 100.0))
    assert tracker.update(ID_A, sample(usage, clock)) is None
    result = tracker.update(ID_A, sample(3.0, 102.0))
    assert result is not None
    assert result.cores == pytest.approx(1.0)


def test_containers_tracked_separately() -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(1.0, 100.0))
    assert tracker.update(ID_B, sample(50.0, 100.5)) is None
    result = tracker.update(ID_A, sample(2.0, 101.0))
    assert result is not None
    assert result.cores == pytest.approx(1.0)


def test_forget_drops_baseline() -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(1.0, 100.0))
    tracker.forget(ID_A)
    assert tracker.update(ID_A, sample(2.0, 101.0)) is None


def test_forget_unknown_is_harmless() -> None:
    CpuUtilizationTracker().forget(ID_A)


def test_retain_drops_others() -> None:
    tracker = CpuUtilizationTracker()
    tracker.update(ID_A, sample(1.0, 100.0))
    tracker.update(ID_B, sample(1.0, 100.0))
    tracker.retain({ID_B})
    assert tracker.update(ID_A, sample(2.0, 101.0)) is None
    assert tracker.update(ID_B, sample(2.0, 101.0)) is not None


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1e9),
            st.floats(min_value=-1e6, max_value=1e9, allow_subnormal=True),
        ),
        min_size=2,
        max_size=20,
    )
)
def test_never_negative_nor_infinite(reads: list[tuple[float, float]]) -> None:
    tracker = CpuUtilizationTracker()
    for usage, clock in reads:
        result = tracker.update(ID_A, sample(usage, clock))
        if result is None:
            continue
        assert result.cores >= 0
        assert result.cores != float("inf")


def test_concurrent_updates_are_consistent() -> None:
    tracker = CpuUtilizationTracker()
    results: list[float] = []
    lock = threading.Lock()

    def worker(container_id: str) -> None:
        for step in range(500):
            result = tracker.update(container_id, sample(step * 0.5, step * 1.0))
            if result is not None:
                with lock:
                    results.append(result.cores)

    threads = [threading.Thread(target=worker, args=(f"{n:064x}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 * 499
    assert set(results) == {0.5}
