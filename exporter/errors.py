"""Errors raised while reading container resource use.

Readers turn these into an entry of ``ContainerSample.errors`` for the one
field they affect, so none of them escapes ``SampleSource.read``.
"""

from __future__ import annotations


class ReaderError(Exception):
    """A value of one container could not be read; ``kind`` labels the count."""

    kind = "read"


class CgroupReadError(ReaderError):
    """A cgroup file exists in principle but could not be opened or read."""

    kind = "cgroup_read"


class CgroupParseError(ReaderError):
    """A cgroup file was read but its content is not in the expected format."""

    kind = "cgroup_parse"


class StatsParseError(ReaderError):
    """A stats API reply lacks a field or carries a value of the wrong type."""

    kind = "stats_parse"


class HostFactError(Exception):
    """A host fact (CPUs, memory, pid limit) could not be read from proc."""
