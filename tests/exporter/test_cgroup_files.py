"""Parsers of single cgroup interface files."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import cgroup_files as files
from exporter.cgroup_access import read_text
from exporter.cgroup_paths import find_v1_mounts, parse_proc_cgroup
from exporter.errors import CgroupParseError

PATH = Path("/sys/fs/cgroup/memory/docker/abc/memory.current")


@pytest.mark.parametrize(("text", "value"), [("0\n", 0), ("4096\n", 4096), (" 7 ", 7)])
def test_integer_parses_value(text: str, value: int) -> None:
    assert files.parse_integer(text, PATH) == value


@pytest.mark.parametrize("text", ["", "\n", "abc", "-1", "1.5", "12 13", "max"])
def test_integer_rejects_malformed(text: str) -> None:
    with pytest.raises(CgroupParseError, match=r"memory\.current"):
        files.parse_integer(text, PATH)


def test_error_shows_content_and_path() -> None:
    with pytest.raises(CgroupParseError) as raised:
        files.parse_integer("abc\n", PATH)
    assert str(raised.value) == (
        f"invalid content 'abc\\n' in {PATH}; expected a non-negative integer"
    )


def test_error_cuts_long_content() -> None:
    with pytest.raises(CgroupParseError) as raised:
        files.parse_integer("x" * 10_000, PATH)
    assert len(str(raised.value)) < 300


@pytest.mark.parametrize(
    ("text", "value"), [("max\n", None), ("268435456\n", 268435456)]
)
def test_limit_parses_max(text: str, value: int | None) -> None:
    assert files.parse_limit(text, PATH) == value


@pytest.mark.parametrize("text", ["", "abc", "MAX", "-1"])
def test_limit_rejects_malformed(text: str) -> None:
    with pytest.raises(CgroupParseError):
        files.parse_limit(text, PATH)


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("max 100000\n", None),
        ("400000 100000\n", 4.0),
        ("50000 100000\n", 0.5),
        ("150000 50000\n", 3.0),
    ],
)
def test_cpu_max_parses_cores(text: str, cores: float | None) -> None:
    assert files.parse_cpu_max(text, PATH) == cores


@pytest.mark.parametrize(
    "text", ["", "max", "400000", "abc 100000", "400000 0", "0 100000", "1 2 3"]
)
def test_cpu_max_rejects_malformed(text: str) -> None:
    with pytest.raises(CgroupParseError):
        files.parse_cpu_max(text, PATH)


@pytest.mark.parametrize(
    ("quota", "period", "cores"),
    [("-1\n", "100000\n", None), ("50000\n", "100000\n", 0.5)],
)
def test_cfs_quota_parses_cores(quota: str, period: str, cores: float | None) -> None:
    assert files.parse_cfs_quota(quota, period, PATH.parent) == cores


@pytest.mark.parametrize(
    ("quota", "period"),
    [("0\n", "100000\n"), ("-2\n", "100000\n"), ("50000\n", "0\n"), ("x", "1")],
)
def test_cfs_quota_rejects_invalid(quota: str, period: str) -> None:
    with pytest.raises(CgroupParseError):
        files.parse_cfs_quota(quota, period, PATH.parent)


def test_keyed_parses_all_lines() -> None:
    text = "usage_usec 10\nuser_usec 6\nsystem_usec 4\n"
    assert files.parse_keyed(text, PATH) == {
        "usage_usec": 10,
        "user_usec": 6,
        "system_usec": 4,
    }


def test_keyed_rejects_odd_line() -> None:
    with pytest.raises(CgroupParseError, match="usage_usec x"):
        files.parse_keyed("usage_usec x\n", PATH)


def test_key_ignores_other_odd_lines() -> None:
    text = "cache 1\nsome odd line\ntotal_inactive_file 13197312\n"
    assert files.parse_key(text, PATH, "total_inactive_file") == 13197312


def test_key_does_not_match_prefix() -> None:
    # inactive_file must not pick up total_inactive_file, nor the reverse.
    text = "total_inactive_file 5\n"
    with pytest.raises(CgroupParseError, match="no 'inactive_file' line"):
        files.parse_key(text, PATH, "inactive_file")


@pytest.mark.parametrize("text", ["oom_kill\n", "oom_kill abc\n", "oom_kill 1 2\n"])
def test_key_rejects_malformed_value(text: str) -> None:
    with pytest.raises(CgroupParseError, match="oom_kill"):
        files.parse_key(text, PATH, "oom_kill")


@pytest.mark.parametrize(
    ("text", "size"), [("0-3,8\n", 5), ("0\n", 1), ("\n", None), ("", None)]
)
def test_cpuset_size_counts_cpus(text: str, size: int | None) -> None:
    assert files.parse_cpuset_size(text, PATH) == size


def test_cpuset_size_rejects_malformed() -> None:
    with pytest.raises(CgroupParseError, match="CPU list"):
        files.parse_cpuset_size("0-x\n", PATH)


def test_proc_cgroup_v1_hybrid_lines() -> None:
    text = (
        "9:name=systemd:/docker/abc\n4:memory:/docker/abc\n"
        "1:cpu,cpuacct:/docker/abc\n0::/docker/abc\n"
    )
    paths = parse_proc_cgroup(text, PATH)
    assert paths["memory"] == "/docker/abc"
    assert paths["cpu"] == "/docker/abc"
    assert paths["cpuacct"] == "/docker/abc"
    assert paths["name=systemd"] == "/docker/abc"
    assert paths[""] == "/docker/abc"


def test_proc_cgroup_v2_systemd_line() -> None:
    paths = parse_proc_cgroup("0::/system.slice/docker-abc.scope\n", PATH)
    assert paths == {"": "/system.slice/docker-abc.scope"}


@pytest.mark.parametrize("text", ["", "garbage\n", "x:memory:/a\n", "4:memory:a\n"])
def test_proc_cgroup_rejects_malformed(text: str) -> None:
    with pytest.raises(CgroupParseError):
        parse_proc_cgroup(text, PATH)


def test_v1_mounts_prefer_exact_names(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")
    (tmp_path / "net_cls,net_prio").mkdir()
    (tmp_path / "memory").mkdir()
    (tmp_path / "cgroup.controllers.bak").write_text("")
    mounts = find_v1_mounts(tmp_path)
    assert mounts["cpu"] == tmp_path / "cpu"
    assert mounts["cpuacct"] == tmp_path / "cpu,cpuacct"
    assert mounts["net_prio"] == tmp_path / "net_cls,net_prio"
    assert mounts["memory"] == tmp_path / "memory"
    assert "cgroup.controllers.bak" not in mounts


def test_v1_mounts_of_missing_root(tmp_path: Path) -> None:
    assert find_v1_mounts(tmp_path / "absent") == {}


def test_read_text_past_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "memory.stat"
    content = "".join(f"key_{n} {n}\n" for n in range(20000))
    path.write_text(content)
    assert read_text(str(path)) == content


def test_undecodable_bytes_are_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "pids.current"
    path.write_bytes(b"\xff\xfe3\n")
    with pytest.raises(CgroupParseError, match=r"pids\.current"):
        files.parse_integer(read_text(str(path)), str(path))
