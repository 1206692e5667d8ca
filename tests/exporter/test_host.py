"""Host facts read from a proc root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.errors import HostFactError
from exporter.host import HostFacts, count_cpu_list
from tests.exporter.fixtures.cgroup_trees import (
    HOST_CPUS,
    HOST_MEMORY_BYTES,
    HOST_PIDS_LIMIT,
    FakeHost,
)


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    return FakeHost(tmp_path, version=1).proc_root


@pytest.mark.parametrize(
    ("text", "count"),
    [("0", 1), ("0-3", 4), ("0-3,8", 5), ("0-1,1-2\n", 3), (" 4,6 ", 2)],
)
def test_cpu_list_counts_cpus(text: str, count: int) -> None:
    assert count_cpu_list(text) == count


@pytest.mark.parametrize("text", ["", "\n", "a", "0-", "3-1", "0,,1", "-1"])
def test_cpu_list_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        count_cpu_list(text)


@given(st.sets(st.integers(min_value=0, max_value=511), min_size=1))
def test_cpu_list_matches_listed_set(cpus: set[int]) -> None:
    text = ",".join(str(cpu) for cpu in sorted(cpus))
    assert count_cpu_list(text) == len(cpus)


def test_reads_all_three_facts(proc_root: Path) -> None:
    limits = HostFacts(proc_root).limits()
    assert limits.online_cpus == HOST_CPUS
    assert limits.memory_total_bytes == HOST_MEMORY_BYTES
    assert limits.pids_limit == HOST_PIDS_LIMIT


def test_pid_limit_takes_smaller_value(proc_root: Path) -> None:
    (proc_root / "sys/kernel/pid_max").write_text("32768\n")
    (proc_root / "sys/kernel/threads-max").write_text("192739\n")
    assert HostFacts(proc_root).pids_limit() == 32768


def test_cache_expires_after_ttl(proc_root: Path) -> None:
    cached = HostFacts(proc_root, ttl_seconds=3600)
    fresh = HostFacts(proc_root, ttl_seconds=0)
    cached.limits()
    fresh.limits()
    (proc_root / "meminfo").write_text("MemTotal:       1024 kB\n")
    assert cached.memory_total_bytes() == HOST_MEMORY_BYTES
    assert fresh.memory_total_bytes() == 1024 * 1024


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("meminfo", "MemFree: 10 kB\n", "no MemTotal"),
        ("meminfo", "MemTotal: lots\n", "invalid MemTotal"),
        ("stat", "intr 0\n", "no cpuN lines"),
        ("sys/kernel/pid_max", "abc\n", "invalid content 'abc'"),
    ],
)
def test_malformed_fact_raises_clear_error(
    proc_root: Path, name: str, content: str, message: str
) -> None:
    (proc_root / name).write_text(content)
    with pytest.raises(HostFactError, match=message):
        HostFacts(proc_root).limits()


def test_missing_proc_root_names_flag(tmp_path: Path) -> None:
    with pytest.raises(HostFactError, match=r"--proc\.root"):
        HostFacts(tmp_path / "absent").limits()


def test_real_host_facts_match_os() -> None:
    limits = HostFacts("/proc").limits()
    assert limits.online_cpus == os.sysconf("SC_NPROCESSORS_ONLN")
    page_count = os.sysconf("SC_PHYS_PAGES")
    assert limits.memory_total_bytes == page_count * os.sysconf("SC_PAGE_SIZE")
    assert limits.pids_limit > 0
