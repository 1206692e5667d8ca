"""Line up Prometheus' rule evaluations with its scrapes of the exporter.

Prometheus starts each scrape loop and each rule group at a fixed offset
within its interval, and both offsets come from hashes. A rule group is
offset by the xxHash64 of its file name and group name (``Group.hash`` and
``Group.EvalTimestamp`` in Prometheus' ``rules`` package), so a sample can
wait up to one interval before an evaluation reads it. The end-to-end
tests check the computed offset against Prometheus 2.42. An enforcement
alert needs two consecutive evaluations, so that wait counts in full
towards the time to a kill.

The stack therefore measures when Prometheus scrapes the exporter, picks a
rule file name whose hash puts the enforcement groups' evaluations a few
hundred milliseconds after that scrape, links that name to the real rule
file and reloads Prometheus. The link keeps the rules where they are, so
an edit of ``alerts/rules.yml`` takes effect on the next reload as before.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import xxhash
import yaml

from alerts.policy import Duration

logger = logging.getLogger(__name__)

NANOSECONDS = 1_000_000_000

# The target delay from the scrape's start to the evaluation, as a share of
# the interval and at most these many seconds. The sample is stored once the
# scrape's reply is parsed, which takes milliseconds for a few hundred
# containers (docs/benchmarks.md), so the lower end leaves room for a slower
# scrape before an evaluation would read the previous sample.
DELAY_SHARE = (0.10, 0.15)
DELAY_MAX_SECONDS = (0.3, 0.5)

# Rule file names tried before giving up. A name lands in the window with a
# chance of 1 in 20 to 1 in 25 per group, so even two enforcement groups in
# one file need about 600 names on average.
MAX_CANDIDATES = 100_000

RFC3339 = re.compile(
    r"^(?P<seconds>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)"
    r"(?:\.(?P<fraction>\d{1,9}))?(?P<zone>Z|[+-]\d\d:\d\d)$"
)


class PhaseError(Exception):
    """Prometheus' scrape or evaluation times could not be read or lined up."""


@dataclass(frozen=True)
class DelayWindow:
    """Accepted delays from a scrape to the next evaluation, in nanoseconds."""

    low: int
    high: int

    @classmethod
    def for_interval(cls, interval_seconds: float) -> DelayWindow:
        """Return the window for scrapes and evaluations every ``interval``."""
        low = min(DELAY_SHARE[0] * interval_seconds, DELAY_MAX_SECONDS[0])
        high = min(DELAY_SHARE[1] * interval_seconds, DELAY_MAX_SECONDS[1])
        return cls(round(low * NANOSECONDS), round(high * NANOSECONDS))

    def contains(self, delay_nanoseconds: int) -> bool:
        return self.low <= delay_nanoseconds <= self.high


def group_offset(file: str, group: str, interval_nanoseconds: int) -> int:
    """Return the offset of a rule group's evaluations within its interval.

    Prometheus hashes the label set ``{file=<file>, name=<group>}``: each
    label's name and value in name order, each followed by the byte 0xff.
    Evaluations then run at Unix times that equal this offset modulo the
    interval.
    """
    data = b"".join(part.encode() + b"\xff" for part in ("file", file, "name", group))
    return int(xxhash.xxh64_intdigest(data) % interval_nanoseconds)


def parse_rfc3339_nanoseconds(text: str) -> int:
    """Parse a Prometheus API time such as ``2026-12-04T16:40:01.717Z``.

    Returns Unix nanoseconds, keeping all nine digits of the fraction,
    which ``datetime`` would cut to microseconds.
    """
    match = RFC3339.match(text)
    if match is None:
        raise PhaseError(f"time {text!r} is not in RFC 3339 format")
    zone = match["zone"].replace("Z", "+00:00")
    whole = datetime.fromisoformat(match["seconds"] + zone)
    fraction = (match["fraction"] or "").ljust(9, "0")
    return int(whole.timestamp()) * NANOSECONDS + int(fraction)


def enforcement_groups(path: Path, default_interval: float) -> list[tuple[str, float]]:
    """Return the name and interval of each group in ``path`` with an ``action``.

    A group without an interval of its own runs at Prometheus' global
    evaluation interval, which the caller passes as ``default_interval``.
    """
    document = yaml.safe_load(path.read_text()) or {}
    groups = []
    for group in document.get("groups") or []:
        rules = group.get("rules") or []
        acts = any("action" in (rule.get("labels") or {}) for rule in rules)
        if not acts:
            continue
        interval = group.get("interval")
        seconds = default_interval if interval is None else duration_seconds(interval)
        groups.append((str(group["name"]), seconds))
    return groups


def duration_seconds(text: str) -> float:
    """Parse a Prometheus duration such as ``5s`` or ``1m30s`` into seconds."""
    try:
        return Duration.parse(str(text)).seconds
    except ValueError:
        raise PhaseError(f"duration {text!r} is not a Prometheus duration") from None


def aligned_name(
    link_folder: Path,
    stem: str,
    groups: Sequence[tuple[str, float]],
    scraped_at: int,
) -> Path:
    """Return the first ``<stem>.<n>.yml`` whose groups start in their window.

    ``scraped_at`` is the start of any scrape of the exporter, in Unix
    nanoseconds; the scrapes repeat every interval from there.

    Raises:
        PhaseError: no name within ``MAX_CANDIDATES`` lines up every group.
    """
    for candidate in range(MAX_CANDIDATES):
        path = link_folder / f"{stem}.{candidate}.yml"
        delays = [
            evaluation_delay(str(path), name, interval, scraped_at)
            for name, interval in groups
        ]
        windows = [DelayWindow.for_interval(interval) for _, interval in groups]
        if all(w.contains(d) for w, d in zip(windows, delays, strict=True)):
            return path
    raise PhaseError(
        f"no rule file name among {MAX_CANDIDATES} lines up the groups "
        f"{[name for name, _ in groups]} with the exporter's scrapes"
    )


def evaluation_delay(file: str, group: str, interval: float, scraped_at: int) -> int:
    """Return nanoseconds from each scrape to the group's next evaluation."""
    interval_nanoseconds = round(interval * NANOSECONDS)
    offset = group_offset(file, group, interval_nanoseconds)
    return (offset - scraped_at) % interval_nanoseconds


def link_aligned_rules(
    rule_files: Sequence[Path],
    link_folder: Path,
    scraped_at: int,
    default_interval: float,
) -> list[Path]:
    """Link each rule file under a name that lines its groups up with scrapes.

    Returns the paths for Prometheus' ``rule_files``, in order. A file
    without enforcement groups is returned as it is. Links from an earlier
    start are removed first.
    """
    # Prometheus reads a relative rule file path against its config's
    # folder, and hashes the result, so only an absolute path is hashed as
    # it is written.
    link_folder = link_folder.resolve()
    if link_folder.exists() and not link_folder.is_dir():
        raise PhaseError(
            f"{link_folder} is not a folder, but the stack keeps its rule "
            "file links there; remove it"
        )
    link_folder.mkdir(parents=True, exist_ok=True)
    for old in link_folder.glob("*.yml"):
        if old.is_symlink():
            old.unlink()
    paths = []
    for index, path in enumerate(rule_files):
        groups = enforcement_groups(path, default_interval)
        if not groups:
            paths.append(path)
            continue
        # The index keeps two rule files with the same name apart.
        link = aligned_name(link_folder, f"{index}-{path.stem}", groups, scraped_at)
        link.symlink_to(path.resolve())
        paths.append(link)
    return paths


def get_json(url: str, headers: Mapping[str, str] | None = None) -> Any:
    """Return the ``data`` of a Prometheus API reply."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            reply = json.load(response)
    except (OSError, ValueError) as error:
        raise PhaseError(f"GET {url} failed: {error}") from error
    if reply.get("status") != "success":
        raise PhaseError(f"GET {url} returned {reply}")
    return reply["data"]


def last_scrape(prometheus_url: str, job: str) -> int | None:
    """Return the start of the latest scrape of ``job``, in Unix nanoseconds.

    Returns None before Prometheus has found the target or scraped it.
    Raises PhaseError when the job has more than one target.
    """
    data = get_json(f"{prometheus_url}/api/v1/targets?state=active")
    targets = [
        target for target in data["activeTargets"] if target["labels"].get("job") == job
    ]
    if not targets:
        return None
    if len(targets) > 1:
        raise PhaseError(
            f"Prometheus at {prometheus_url} has {len(targets)} targets of job "
            f"{job!r}; lining up evaluations needs exactly one"
        )
    scraped = parse_rfc3339_nanoseconds(targets[0]["lastScrape"])
    return scraped if scraped > 0 else None


def wait_for_scrape(prometheus_url: str, job: str, timeout: float) -> int:
    """Wait for the first scrape of ``job`` and return when it started."""
    deadline = time.monotonic() + timeout
    while True:
        scraped = last_scrape(prometheus_url, job)
        if scraped is not None:
            return scraped
        if time.monotonic() > deadline:
            raise PhaseError(
                f"Prometheus at {prometheus_url} did not scrape job {job!r} "
                f"within {timeout:g} s; see its log and /targets"
            )
        time.sleep(0.1)


def loaded_rule_files(prometheus_url: str) -> set[str]:
    """Return the rule files of the groups Prometheus has loaded."""
    data = get_json(f"{prometheus_url}/api/v1/rules")
    return {group["file"] for group in data["groups"]}


def active_alertmanagers(prometheus_url: str) -> int:
    """Return how many Alertmanagers Prometheus sends alerts to right now.

    After a reload Prometheus discovers its Alertmanagers again, which takes
    up to 5 s. An alert that fires before then is dropped and sent again only
    after ``--rules.alert.resend-delay`` (1 m by default).
    """
    data = get_json(f"{prometheus_url}/api/v1/alertmanagers")
    return len(data["activeAlertmanagers"])


def evaluation_delays(
    prometheus_url: str, job: str, groups: Sequence[str]
) -> dict[str, float]:
    """Return seconds from the latest scrape of ``job`` to each group's evaluation.

    Measured from the API's ``lastScrape`` and ``lastEvaluation`` times,
    modulo the group's interval; a group not yet evaluated is left out.
    """
    scraped = last_scrape(prometheus_url, job)
    delays: dict[str, float] = {}
    if scraped is None:
        return delays
    for group in get_json(f"{prometheus_url}/api/v1/rules")["groups"]:
        if group["name"] not in groups:
            continue
        evaluated = parse_rfc3339_nanoseconds(group["lastEvaluation"])
        interval = round(float(group["interval"]) * NANOSECONDS)
        if evaluated > 0 and interval > 0:
            delays[group["name"]] = ((evaluated - scraped) % interval) / NANOSECONDS
    return delays
