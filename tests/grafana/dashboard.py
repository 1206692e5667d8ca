"""Read the committed dashboard and turn its queries into plain PromQL.

Grafana fills in template variables before it sends a query. The helpers
here do the same, so that Prometheus can run what Grafana would send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = ROOT / "grafana" / "dashboards" / "warden.json"
PROVISIONING = ROOT / "grafana" / "provisioning"

COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")
RATE_FUNCTIONS = ("rate", "irate", "increase")

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[([^\[\]]*)\]")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_CALL = re.compile(r"\b([A-Za-z_]+)\s*\($")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the dashboard and where it comes from."""

    kind: str
    title: str
    ref_id: str
    expr: str
    instant: bool = False

    @property
    def where(self) -> str:
        """Name the query in test ids and failure messages."""
        return f"{self.kind} {self.title!r} {self.ref_id}"


def load_dashboard() -> dict[str, Any]:
    """Load the committed dashboard JSON."""
    return dict(json.loads(DASHBOARD_PATH.read_text()))


def graph_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every panel that draws data, leaving out row headers."""
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    """Yield the expression of every panel target and annotation."""
    for panel in graph_panels(dashboard):
        for query in panel["targets"]:
            yield Query(
                kind="panel",
                title=panel["title"],
                ref_id=query["refId"],
                expr=query["expr"],
                instant=bool(query.get("instant")),
            )
    for item in dashboard["annotations"]["list"]:
        if "expr" in item:
            yield Query(
                kind="annotation",
                title=item["name"],
                ref_id=item["target"]["refId"],
                expr=item["expr"],
            )


def fill_variables(expr: str, rate_interval: str = "20s") -> str:
    """Replace Grafana's variables the way Grafana would before a query.

    ``$__rate_interval`` and ``$__range`` become ``rate_interval``. Every
    dashboard variable becomes ``.+``, the allValue of "All".
    """
    special = {"__rate_interval": rate_interval, "__range": rate_interval}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return special.get(name, ".+")

    return _VARIABLE.sub(replace, expr)


def _blank(pattern: re.Pattern[str], text: str) -> str:
    """Overwrite each match with spaces, keeping the other offsets in place."""
    return pattern.sub(lambda match: " " * len(match.group(0)), text)


def enclosing_function(expr: str, position: int) -> str | None:
    """Return the function whose parentheses enclose ``position``, if any."""
    depth = 0
    for index in range(position - 1, -1, -1):
        char = expr[index]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth == 0:
                call = _CALL.search(expr[: index + 1])
                return call.group(1) if call else None
            depth -= 1
    return None


def bare_counters(expr: str) -> list[str]:
    """Return counter names in ``expr`` that no rate() or increase() wraps."""
    code = _blank(_STRING, expr)
    code = _blank(_MATCHERS, code)
    code = _blank(_RANGE, code)
    found = []
    for match in _IDENTIFIER.finditer(code):
        name = match.group(0)
        if not name.endswith(COUNTER_SUFFIXES):
            continue
        if enclosing_function(code, match.start()) not in RATE_FUNCTIONS:
            found.append(name)
    return found


def rate_ranges(expr: str) -> list[tuple[str, str]]:
    """Return (function, range) for each rate(), irate() and increase() call."""
    code = _blank(_STRING, expr)
    code = _blank(_MATCHERS, code)
    calls = []
    for match in re.finditer(r"\b(rate|irate|increase)\s*\(", code):
        depth = 0
        for index in range(match.end() - 1, len(code)):
            if code[index] == "(":
                depth += 1
            elif code[index] == ")":
                depth -= 1
                if depth == 0:
                    break
        argument = code[match.end() : index]
        ranges = _RANGE.findall(argument)
        calls.append((match.group(1), ranges[-1].strip() if ranges else ""))
    return calls
