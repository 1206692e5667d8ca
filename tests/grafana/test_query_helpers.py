"""Tests of the PromQL helpers that the dashboard checks rely on."""

from __future__ import annotations

import pytest

from tests.grafana.dashboard import bare_counters, fill_variables, rate_ranges


@pytest.mark.parametrize(
    "expr",
    [
        "rate(a_total[$__rate_interval])",
        'sum by (code) (rate(a_total{code=~"5.."}[$__rate_interval]))',
        "histogram_quantile(0.9, sum by (le) (rate(a_bucket[$__rate_interval])))",
        "increase(a_total[$__rate_interval]) > 0",
        'up{job="a_total"}',
        "a_ratio",
    ],
)
def test_wrapped_counter_is_accepted(expr: str) -> None:
    assert bare_counters(expr) == []


@pytest.mark.parametrize(
    ("expr", "counter"),
    [
        ("a_total", "a_total"),
        ('sum(a_total{kind="x"})', "a_total"),
        ("histogram_quantile(0.9, a_bucket)", "a_bucket"),
        ("a_sum / a_count", "a_sum"),
        ("rate(b_total[1m]) + c_total", "c_total"),
        ("max_over_time(a_total[$__rate_interval])", "a_total"),
    ],
)
def test_bare_counter_is_found(expr: str, counter: str) -> None:
    assert counter in bare_counters(expr)


def test_rate_ranges_lists_each_call() -> None:
    expr = 'rate(a_total[1m]) / increase(b_total{x="[5m]"}[$__rate_interval])'
    assert rate_ranges(expr) == [("rate", "1m"), ("increase", "$__rate_interval")]


def test_rate_without_range_reports_empty() -> None:
    assert rate_ranges("rate(a_total)") == [("rate", "")]


def test_fill_variables_uses_all_value() -> None:
    expr = 'x{instance=~"$instance", name=~"${name}"}[$__rate_interval]'
    assert fill_variables(expr) == 'x{instance=~".+", name=~".+"}[20s]'
