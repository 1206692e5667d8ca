"""Rule file names that line Prometheus' evaluations up with its scrapes.

The offsets computed here are checked against a real Prometheus in
the end-to-end tests (tests/e2e), which start the stack.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.options import committed_rule_files
from deploy.phase import (
    NANOSECONDS,
    DelayWindow,
    PhaseError,
    aligned_name,
    duration_seconds,
    enforcement_groups,
    evaluation_delay,
    group_offset,
    link_aligned_rules,
    parse_rfc3339_nanoseconds,
)

FIVE_SECONDS = 5 * NANOSECONDS

NO_ACTION_RULES = """\
groups:
- name: people
  interval: 5s
  rules:
  - alert: ExporterDown
    expr: up == 0
    labels:
      severity: warning
"""


def test_group_offset_within_interval() -> None:
    offset = group_offset("/etc/prometheus/rules.yml", "warden-containers", 10**9)
    assert 0 <= offset < 10**9


def test_group_offset_depends_on_file() -> None:
    first = group_offset("/a/rules.yml", "warden-containers", FIVE_SECONDS)
    second = group_offset("/b/rules.yml", "warden-containers", FIVE_SECONDS)
    assert first != second


def test_group_offset_known_value() -> None:
    # Prometheus 2.42 evaluated this group 4.650 s past each 5 s boundary.
    offset = group_offset("/work/main/alerts/rules.yml", "warden-containers", 5 * 10**9)
    assert offset / NANOSECONDS == pytest.approx(4.650, abs=0.001)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:01Z", NANOSECONDS),
        ("1970-01-01T00:00:01.5Z", NANOSECONDS + 500_000_000),
        ("1970-01-01T00:00:01.123456789Z", NANOSECONDS + 123_456_789),
        ("1970-01-01T01:00:01.000000001+01:00", NANOSECONDS + 1),
        ("0001-01-01T00:00:00Z", -62135596800 * NANOSECONDS),
    ],
)
def test_rfc3339_parsed_to_nanoseconds(text: str, expected: int) -> None:
    assert parse_rfc3339_nanoseconds(text) == expected


def test_rfc3339_invalid_named() -> None:
    with pytest.raises(PhaseError, match="'yesterday' is not in RFC 3339"):
        parse_rfc3339_nanoseconds("yesterday")


@pytest.mark.parametrize(
    ("text", "expected"), [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("1h", 3600)]
)
def test_duration_parsed(text: str, expected: float) -> None:
    assert duration_seconds(text) == expected


@pytest.mark.parametrize("text", ["5", "5x", "s", "5s junk"])
def test_duration_invalid_named(text: str) -> None:
    with pytest.raises(PhaseError, match="is not a Prometheus duration"):
        duration_seconds(text)


def test_committed_enforcement_group_found() -> None:
    groups = enforcement_groups(committed_rule_files()[0], 5.0)
    assert groups == [("warden-containers", 5.0)]


def test_group_without_action_left_out(tmp_path: Path) -> None:
    path = tmp_path / "people.yml"
    path.write_text(NO_ACTION_RULES)
    assert enforcement_groups(path, 5.0) == []


@pytest.mark.parametrize(
    ("interval", "low", "high"), [(5.0, 0.3, 0.5), (1.0, 0.1, 0.15), (30.0, 0.3, 0.5)]
)
def test_delay_window_per_interval(interval: float, low: float, high: float) -> None:
    window = DelayWindow.for_interval(interval)
    assert window.low == round(low * NANOSECONDS)
    assert window.high == round(high * NANOSECONDS)


@settings(max_examples=50, deadline=None)
@given(
    scraped_at=st.integers(min_value=0, max_value=2**62),
    interval=st.sampled_from([1.0, 5.0, 15.0]),
)
def test_aligned_name_lands_in_window(scraped_at: int, interval: float) -> None:
    folder = Path("/var/lib/warden/rules")
    groups = [("warden-containers", interval), ("warden-extra", interval)]
    path = aligned_name(folder, "0-rules", groups, scraped_at)
    assert path.parent == folder
    window = DelayWindow.for_interval(interval)
    for name, _ in groups:
        delay = evaluation_delay(str(path), name, interval, scraped_at)
        assert window.contains(delay)


def test_links_point_at_rules(tmp_path: Path) -> None:
    committed = committed_rule_files()[0]
    people = tmp_path / "people.yml"
    people.write_text(NO_ACTION_RULES)
    folder = tmp_path / "state" / "rules"
    paths = link_aligned_rules([committed, people], folder, 1234567, 5.0)
    assert paths[1] == people
    assert paths[0].parent == folder
    assert paths[0].is_symlink()
    assert paths[0].resolve() == committed.resolve()


def test_links_of_earlier_start_removed(tmp_path: Path) -> None:
    committed = committed_rule_files()[0]
    folder = tmp_path / "rules"
    first = link_aligned_rules([committed], folder, 0, 5.0)
    second = link_aligned_rules([committed], folder, 2 * NANOSECONDS, 5.0)
    assert first != second
    assert sorted(folder.iterdir()) == second


def test_links_keep_same_names_apart(tmp_path: Path) -> None:
    committed = committed_rule_files()[0]
    paths = link_aligned_rules([committed, committed], tmp_path / "rules", 0, 5.0)
    assert paths[0] != paths[1]
    assert all(path.resolve() == committed.resolve() for path in paths)


def test_links_absolute_from_relative_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    paths = link_aligned_rules(committed_rule_files(), Path("state/rules"), 0, 5.0)
    assert paths[0].is_absolute()
    assert paths[0].parent == (tmp_path / "state" / "rules").resolve()


def test_group_without_interval_uses_default(tmp_path: Path) -> None:
    rules = committed_rule_files()[0].read_text().replace("  interval: 5s\n", "")
    path = tmp_path / "rules.yml"
    path.write_text(rules)
    assert enforcement_groups(path, 2.0) == [("warden-containers", 2.0)]


def test_link_folder_file_named(tmp_path: Path) -> None:
    (tmp_path / "rules").write_text("not a folder")
    with pytest.raises(PhaseError, match="is not a folder"):
        link_aligned_rules(committed_rule_files(), tmp_path / "rules", 0, 5.0)
