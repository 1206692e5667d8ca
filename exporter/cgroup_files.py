"""Parse the content of cgroup v1 and v2 interface files.

Each parser takes the file's text and its path, and raises CgroupParseError
naming both when the text is not in the kernel's format. "Unlimited",
spelled ``max`` on v2 and ``-1`` in some v1 files, becomes None.
"""

from __future__ import annotations

from pathlib import Path

from exporter.errors import CgroupParseError
from exporter.host import count_cpu_list

# Content longer than this is cut in error messages.
_SHOWN_CHARS = 80


def _show(text: str) -> str:
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + "..."
    return repr(text)


def _invalid(path: str | Path, text: str, expected: str) -> CgroupParseError:
    return CgroupParseError(
        f"invalid content {_show(text)} in {path}; expected {expected}"
    )


def parse_integer(text: str, path: str | Path) -> int:
    """Parse a file that contains one non-negative integer, such as memory.current."""
    stripped = text.strip()
    if not stripped.isdigit():
        raise _invalid(path, text, "a non-negative integer")
    return int(stripped)


def parse_limit(text: str, path: str | Path) -> int | None:
    """Parse a limit that is an integer or ``max``; ``max`` becomes None."""
    if text.strip() == "max":
        return None
    stripped = text.strip()
    if not stripped.isdigit():
        raise _invalid(path, text, "a non-negative integer or 'max'")
    return int(stripped)


def parse_signed_integer(text: str, path: str | Path) -> int:
    """Parse a file that contains one integer that may be -1, such as cfs_quota_us."""
    stripped = text.strip()
    digits = stripped[1:] if stripped.startswith("-") else stripped
    if not digits.isdigit():
        raise _invalid(path, text, "an integer")
    return int(stripped)


def parse_keyed(text: str, path: str | Path) -> dict[str, int]:
    """Parse a flat keyed file of ``key value`` lines, such as memory.stat."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise _invalid(path, line, "'<key> <non-negative integer>' lines")
        values[parts[0]] = int(parts[1])
    return values


def _value_after(text: str, prefix: str) -> str | None:
    """Return the stripped rest of the first line that starts with ``prefix``."""
    if text.startswith(prefix):
        start = len(prefix)
    else:
        found = text.find("\n" + prefix)
        if found < 0:
            return None
        start = found + 1 + len(prefix)
    end = text.find("\n", start)
    return text[start : end if end >= 0 else len(text)].strip()


def parse_key(text: str, path: str | Path, key: str) -> int:
    """Return the value of ``key`` in a flat keyed file.

    Only the line of ``key`` has to be well formed, so that one odd line the
    reader does not use costs no value.
    """
    # Fast path: find the line by its "key " prefix rather than split all
    # of memory.stat's dozens of lines. Anything else takes the full scan.
    value = _value_after(text, key + " ")
    if value is not None and value.isdigit():
        return int(value)
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == key:
            if len(parts) != 2 or not parts[1].isdigit():
                raise _invalid(path, line, f"'{key} <non-negative integer>'")
            return int(parts[1])
    raise CgroupParseError(
        f"no {key!r} line in {path} (content {_show(text)}); the kernel may be "
        "too old to report it"
    )


def parse_cpu_max(text: str, path: str | Path) -> float | None:
    """Parse cgroup v2 cpu.max (``400000 100000`` or ``max 100000``) into cores."""
    parts = text.split()
    if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) == 0:
        raise _invalid(path, text, "'<quota> <period>' or 'max <period>'")
    if parts[0] == "max":
        return None
    # The kernel rejects a zero quota, so "0" can only be a corrupt read.
    if not parts[0].isdigit() or int(parts[0]) == 0:
        raise _invalid(path, text, "'<quota> <period>' or 'max <period>'")
    return int(parts[0]) / int(parts[1])


def parse_cfs_quota(
    quota_text: str, period_text: str, path: str | Path
) -> float | None:
    """Turn v1 cpu.cfs_quota_us and cpu.cfs_period_us into cores; -1 is None."""
    quota = parse_signed_integer(quota_text, f"{path}/cpu.cfs_quota_us")
    period = parse_integer(period_text, f"{path}/cpu.cfs_period_us")
    if quota == -1:
        return None
    if quota <= 0 or period == 0:
        raise CgroupParseError(
            f"invalid CFS quota {quota} us per period {period} us in {path}; "
            "expected -1 or a positive quota and period"
        )
    return quota / period


def parse_cpuset_size(text: str, path: str | Path) -> int | None:
    """Count the CPUs in a cpuset list file; an empty file becomes None."""
    if not text.strip():
        return None
    try:
        return count_cpu_list(text)
    except ValueError as error:
        raise _invalid(path, text, f"a CPU list such as '0-3,8' ({error})") from None
