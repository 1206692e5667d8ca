"""Every dashboard query parses in a real Prometheus once Grafana fills it in.

An empty Prometheus runs each expression at one instant: a syntax error, a
range vector where an instant vector belongs or an unknown function comes
back as HTTP 400 with Prometheus's own message.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.grafana.dashboard import Query, fill_variables, load_dashboard, queries
from tests.services import Server, ServerFactory, http_get

QUERIES = list(queries(load_dashboard()))


@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    factory = ServerFactory(Path(tmp_path_factory.mktemp("promql")))
    yield factory.prometheus({"global": {"scrape_interval": "15s"}})
    factory.stop_all()


def test_dashboard_has_queries() -> None:
    assert len(QUERIES) >= 15


@pytest.mark.parametrize("query", QUERIES, ids=[query.where for query in QUERIES])
def test_query_parses_in_prometheus(empty_prometheus: Server, query: Query) -> None:
    expr = fill_variables(query.expr)
    url = f"{empty_prometheus.url}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expr}
    )
    status, body = http_get(url)
    reply = json.loads(body)
    assert status == 200, f"{reply.get('error')} in:\n{expr}"
    assert reply["status"] == "success"


def test_invalid_query_is_rejected(empty_prometheus: Server) -> None:
    expr = fill_variables("rate(warden_enforcer_requests_total)")
    url = f"{empty_prometheus.url}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expr}
    )
    status, _ = http_get(url)
    assert status == 400
