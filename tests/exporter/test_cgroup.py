"""CgroupReader on cgroup trees built in the kernel's formats."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from exporter.cgroup import CgroupReader
from exporter.model import ContainerGoneError, ContainerInfo
from tests.exporter.fixtures.cgroup_trees import (
    HOST_CPUS,
    HOST_MEMORY_BYTES,
    HOST_PIDS_LIMIT,
    MIB,
    FakeHost,
)

ID_A = "20405e1ffe5c0a1373b1cd5e1d61eb6a263076ae521e0598e26e9db8376b108b"
ID_B = "b" * 64
ID_C = "c" * 64

LAYOUTS = {
    "v1-separate": {"version": 1},
    "v1-comounted": {"version": 1, "comounted": True},
    "v1-systemd-comounted": {"version": 1, "comounted": True, "driver": "systemd"},
    "v2-systemd": {"version": 2, "driver": "systemd"},
    "v2-cgroupfs": {"version": 2, "driver": "cgroupfs"},
}


@pytest.fixture(params=sorted(LAYOUTS))
def host(request: pytest.FixtureRequest, tmp_path: Path) -> FakeHost:
    """Return a fake host in each supported layout."""
    return FakeHost(tmp_path, **LAYOUTS[request.param])


@pytest.fixture(params=["v1-separate", "v2-systemd"])
def both_versions(request: pytest.FixtureRequest, tmp_path: Path) -> FakeHost:
    """Return a fake host of each cgroup version."""
    return FakeHost(tmp_path, **LAYOUTS[request.param])


def reader_for(host: FakeHost) -> CgroupReader:
    return CgroupReader(cgroup_root=host.cgroup_root, proc_root=host.proc_root)


def test_reads_default_files_in_every_layout(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    sample = reader_for(host).read(info)
    assert sample.errors == {}
    assert sample.pids == 1
    assert sample.memory_oom_kills == 0
    if host.version == 1:
        assert sample.cpu_usage_seconds == pytest.approx(0.020476008)
        assert sample.cpu_throttled_seconds == pytest.approx(0.0025)
        assert sample.cpu_limit_cores == pytest.approx(0.5)
        assert sample.memory_usage_bytes == 2387968
        assert sample.memory_working_set_bytes == 2387968 - 1912832
        assert sample.memory_limit_bytes == 64 * MIB
        assert sample.pids_limit == 50
    else:
        assert sample.cpu_usage_seconds == pytest.approx(0.723671)
        assert sample.cpu_throttled_seconds == 0.0
        assert sample.cpu_limit_cores == float(HOST_CPUS)
        assert sample.memory_usage_bytes == 4096
        assert sample.memory_working_set_bytes == 0
        assert sample.memory_limit_bytes == HOST_MEMORY_BYTES
        assert sample.pids_limit == HOST_PIDS_LIMIT


def test_cpu_clock_is_monotonic_time(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    reader = reader_for(host)
    first = reader.read(info).cpu_clock_seconds
    second = reader.read(info).cpu_clock_seconds
    assert first is not None
    assert second is not None
    assert second >= first


def test_page_cache_v1_excluded_from_working_set(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=1)
    info = host.add_container(
        ID_A,
        pid=1234,
        files={
            "memory.usage_in_bytes": "144052224\n",
            "memory.limit_in_bytes": "4294967296\n",
            "memory.stat": "cache 20000000\ntotal_inactive_file 13197312\n",
        },
    )
    sample = reader_for(host).read(info)
    assert sample.memory_working_set_bytes == 130854912
    assert sample.memory_limit_bytes == 4294967296
    ratio = sample.memory_working_set_bytes / sample.memory_limit_bytes
    assert ratio == pytest.approx(0.030467, abs=1e-6)


def test_page_cache_v2_excluded_from_working_set(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=2, driver="systemd")
    info = host.add_container(
        ID_A,
        pid=1234,
        files={
            "memory.current": "104857600\n",
            "memory.max": "268435456\n",
            "memory.stat": "anon 73400320\nfile 31457280\ninactive_file 31457280\n",
        },
    )
    sample = reader_for(host).read(info)
    assert sample.memory_working_set_bytes == 73400320
    assert sample.memory_limit_bytes == 268435456
    ratio = sample.memory_working_set_bytes / sample.memory_limit_bytes
    assert ratio == 0.2734375


def test_working_set_floored_at_zero(both_versions: FakeHost) -> None:
    host = both_versions
    if host.version == 1:
        files = {
            "memory.usage_in_bytes": "4096\n",
            "memory.stat": "total_inactive_file 8192\n",
        }
    else:
        files = {"memory.current": "4096\n", "memory.stat": "inactive_file 8192\n"}
    info = host.add_container(ID_A, pid=1234, files=files)
    sample = reader_for(host).read(info)
    assert sample.memory_working_set_bytes == 0
    assert sample.errors == {}


def test_v2_max_means_host_limits(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=2)
    info = host.add_container(
        ID_A,
        pid=1234,
        files={"memory.current": "4096\n", "memory.max": "max\n", "pids.max": "max\n"},
    )
    sample = reader_for(host).read(info)
    assert sample.memory_usage_bytes == 4096
    assert sample.memory_limit_bytes == HOST_MEMORY_BYTES
    assert sample.pids_limit == HOST_PIDS_LIMIT
    assert sample.errors == {}


def test_v1_unlimited_memory_means_host_memory(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=1)
    info = host.add_container(
        ID_A, pid=1234, files={"memory.limit_in_bytes": "9223372036854771712\n"}
    )
    sample = reader_for(host).read(info)
    assert sample.memory_limit_bytes == HOST_MEMORY_BYTES


def test_limit_above_host_memory_capped(both_versions: FakeHost) -> None:
    name = "memory.max" if both_versions.version == 2 else "memory.limit_in_bytes"
    info = both_versions.add_container(
        ID_A, pid=1234, files={name: f"{HOST_MEMORY_BYTES * 2}\n"}
    )
    sample = reader_for(both_versions).read(info)
    assert sample.memory_limit_bytes == HOST_MEMORY_BYTES


def test_pid_limit_is_smaller_kernel_limit(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=1)
    (host.proc_root / "sys/kernel/threads-max").write_text("1000\n")
    info = host.add_container(ID_A, pid=1234, files={"pids.max": "max\n"})
    sample = reader_for(host).read(info)
    assert sample.pids_limit == 1000


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.cfs_quota_us": "400000\n", "cpu.cfs_period_us": "100000\n"}, 4.0),
        ({"cpu.cfs_quota_us": "-1\n", "cpuset.cpus": "0-3,8\n"}, 5.0),
        ({"cpu.cfs_quota_us": "-1\n", "cpuset.cpus": "\n"}, float(HOST_CPUS)),
        ({"cpu.cfs_quota_us": "-1\n", "cpuset.cpus": None}, float(HOST_CPUS)),
        ({"cpu.cfs_quota_us": "-1\n", "cpuset.cpus": "0-21\n"}, 22.0),
    ],
)
def test_v1_cpu_limit_sources(
    tmp_path: Path, files: dict[str, str | None], cores: float
) -> None:
    host = FakeHost(tmp_path, version=1)
    info = host.add_container(ID_A, pid=1234, files=files)
    sample = reader_for(host).read(info)
    assert sample.cpu_limit_cores == cores
    assert sample.errors == {}


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.max": "400000 100000\n"}, 4.0),
        ({"cpu.max": "50000 100000\n"}, 0.5),
        ({"cpu.max": "max 100000\n", "cpuset.cpus.effective": "2,4-5\n"}, 3.0),
        ({"cpu.max": None, "cpuset.cpus.effective": None}, float(HOST_CPUS)),
    ],
)
def test_v2_cpu_limit_sources(
    tmp_path: Path, files: dict[str, str | None], cores: float
) -> None:
    host = FakeHost(tmp_path, version=2, driver="systemd")
    info = host.add_container(ID_A, pid=1234, files=files)
    sample = reader_for(host).read(info)
    assert sample.cpu_limit_cores == cores
    assert sample.errors == {}


MALFORMED = ["abc", "", "12ab\n", "-5\n"]


@pytest.mark.parametrize("content", MALFORMED)
def test_malformed_usage_leaves_only_field(
    both_versions: FakeHost, content: str
) -> None:
    name = "memory.current" if both_versions.version == 2 else "memory.usage_in_bytes"
    info = both_versions.add_container(ID_A, pid=1234, files={name: content})
    sample = reader_for(both_versions).read(info)
    assert sample.memory_usage_bytes is None
    assert sample.memory_working_set_bytes is None
    assert name in sample.errors["cgroup_parse"]
    assert repr(content) in sample.errors["cgroup_parse"]
    assert sample.memory_limit_bytes is not None
    assert sample.cpu_usage_seconds is not None
    assert sample.pids == 1


def test_truncated_memory_stat_is_error(both_versions: FakeHost) -> None:
    # Cut off before the inactive_file lines, as a torn read would be.
    info = both_versions.add_container(
        ID_A, pid=1234, files={"memory.stat": "cache 1925120\nrss 53"}
    )
    sample = reader_for(both_versions).read(info)
    assert sample.memory_working_set_bytes is None
    assert "memory.stat" in sample.errors["cgroup_parse"]
    assert sample.memory_usage_bytes is not None


def test_missing_oom_kill_key_is_error(both_versions: FakeHost) -> None:
    if both_versions.version == 1:
        files = {"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"}
    else:
        files = {"memory.events": "low 0\nhigh 0\nmax 0\noom 0\n"}
    info = both_versions.add_container(ID_A, pid=1234, files=files)
    sample = reader_for(both_versions).read(info)
    assert sample.memory_oom_kills is None
    assert "oom_kill" in sample.errors["cgroup_parse"]


def test_malformed_limits_are_unknown_not_host(both_versions: FakeHost) -> None:
    if both_versions.version == 1:
        files = {
            "cpu.cfs_quota_us": "abc\n",
            "memory.limit_in_bytes": "abc\n",
            "pids.max": "lots\n",
        }
    else:
        files = {"cpu.max": "abc\n", "memory.max": "abc\n", "pids.max": "lots\n"}
    info = both_versions.add_container(ID_A, pid=1234, files=files)
    sample = reader_for(both_versions).read(info)
    assert sample.cpu_limit_cores is None
    assert sample.memory_limit_bytes is None
    assert sample.pids_limit is None
    assert sample.errors["cgroup_parse"].count("invalid content") == 3


def test_malformed_cpuset_gives_no_limit(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=1)
    info = host.add_container(
        ID_A, pid=1234, files={"cpu.cfs_quota_us": "-1\n", "cpuset.cpus": "0-x\n"}
    )
    sample = reader_for(host).read(info)
    assert sample.cpu_limit_cores is None
    assert "cpuset.cpus" in sample.errors["cgroup_parse"]


def test_missing_required_file_is_read_error(both_versions: FakeHost) -> None:
    info = both_versions.add_container(ID_A, pid=1234, files={"pids.current": None})
    sample = reader_for(both_versions).read(info)
    assert sample.pids is None
    assert "pids.current" in sample.errors["cgroup_read"]
    assert sample.pids_limit is not None


def test_malformed_file_logged_at_debug(
    both_versions: FakeHost, caplog: pytest.LogCaptureFixture
) -> None:
    # The collector counts and warns about the errors of every source, so
    # the reader's own lines are debug detail.
    info = both_versions.add_container(ID_A, pid=1234, files={"pids.current": "x"})
    reader = reader_for(both_versions)
    with caplog.at_level(logging.DEBUG, logger="exporter"):
        for _ in range(3):
            assert "cgroup_parse" in reader.read(info).errors
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert warnings == []
    assert any(ID_A in line and "pids.current" in line for line in debug)


def test_missing_process_means_gone(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    host.end_process(1234)
    with pytest.raises(ContainerGoneError):
        reader_for(host).read(info)


def test_pid_zero_means_gone(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=0)
    with pytest.raises(ContainerGoneError):
        reader_for(host).read(info)


def test_removed_cgroup_means_gone(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    reader = reader_for(host)
    reader.read(info)
    host.remove_container(ID_A)
    with pytest.raises(ContainerGoneError):
        reader.read(info)


def test_reused_pid_means_gone(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    # The init process exited and an unrelated host process got its pid.
    host.write_proc_cgroup(1234, "/user.slice/session-1.scope")
    with pytest.raises(ContainerGoneError):
        reader_for(host).read(info)


def test_changed_pid_resolves_again(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    reader = reader_for(host)
    reader.read(info)
    host.end_process(1234)
    host.remove_container(ID_A)
    # Restarted under the same ID with a new init process and a new cgroup.
    restarted = host.add_container(ID_A, pid=5678, files={"pids.current": "7\n"})
    assert reader.read(restarted).pids == 7


def test_path_cached_per_pid(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    reader = reader_for(host)
    reader.read(info)
    # With the path cached, /proc is not read again for the same pid.
    (host.proc_root / "1234" / "cgroup").write_text("garbage")
    assert reader.read(info).errors == {}


def test_read_all_leaves_out_gone(host: FakeHost) -> None:
    a = host.add_container(ID_A, pid=1001)
    b = host.add_container(ID_B, pid=1002)
    c = host.add_container(ID_C, pid=1003)
    reader = reader_for(host)
    # B is removed after listing, C's init process exits just before its read.
    host.remove_container(ID_B)
    host.end_process(1002)
    host.end_process(1003)
    samples = reader.read_all([a, b, c])
    assert set(samples) == {ID_A}
    assert samples[ID_A].errors == {}


def test_removed_between_resolve_and_read(host: FakeHost) -> None:
    a = host.add_container(ID_A, pid=1001)
    b = host.add_container(ID_B, pid=1002)
    reader = reader_for(host)
    reader.read_all([a, b])
    host.remove_container(ID_B)
    samples = reader.read_all([a, b])
    assert set(samples) == {ID_A}


def test_hybrid_unified_line_is_not_v2(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=1)
    # This host's hybrid layout mounts cgroup2 at unified/ but has no
    # cgroup.controllers at the root.
    (host.cgroup_root / "unified" / "cgroup.controllers").write_text("")
    info = host.add_container(ID_A, pid=1234)
    sample = reader_for(host).read(info)
    assert sample.cpu_limit_cores == 0.5
    assert sample.errors == {}


def test_malformed_proc_cgroup_is_error(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    (host.proc_root / "1234" / "cgroup").write_text("not a cgroup line\n")
    sample = reader_for(host).read(info)
    assert "cgroup_parse" in sample.errors
    assert sample.cpu_usage_seconds is None
    assert sample.memory_usage_bytes is None


def test_foreign_cgroup_namespace_is_error(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    host.write_proc_cgroup(1234, f"/../../docker/{ID_A}")
    sample = reader_for(host).read(info)
    assert "--cgroupns=host" in sample.errors["cgroup_parse"]


def test_unreadable_host_facts_is_error(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    (host.proc_root / "meminfo").write_text("garbage\n")
    sample = reader_for(host).read(info)
    assert "MemTotal" in sample.errors["host_read"]
    assert sample.memory_limit_bytes is None
    assert sample.memory_usage_bytes is not None


def test_probe_accepts_usable_tree(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    assert reader_for(host).probe([info]) is None


def test_probe_rejects_missing_root(tmp_path: Path) -> None:
    reader = CgroupReader(cgroup_root=tmp_path / "none", proc_root=tmp_path)
    reason = reader.probe()
    assert reason is not None
    assert "none" in reason


def test_probe_rejects_missing_controller(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=1)
    (host.cgroup_root / "pids").rmdir()
    reason = reader_for(host).probe()
    assert reason is not None
    assert "pids" in reason


def test_probe_rejects_foreign_pid_namespace(host: FakeHost) -> None:
    info = host.add_container(ID_A, pid=1234)
    host.end_process(1234)
    reason = reader_for(host).probe([info])
    assert reason is not None
    assert "pid namespace" in reason


def test_concurrent_reads_are_safe(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, version=1)
    infos = [host.add_container(f"{n:064x}", pid=2000 + n) for n in range(20)]
    reader = reader_for(host)
    failures: list[BaseException] = []
    counts: list[int] = []

    def scrape(subset: list[ContainerInfo]) -> None:
        try:
            for _ in range(20):
                counts.append(len(reader.read_all(subset)))
        except BaseException as error:
            failures.append(error)

    subsets = [infos, infos[:10], infos[10:], infos[::2]]
    threads = [threading.Thread(target=scrape, args=(s,)) for s in subsets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(set(counts)) == [10, 20]
