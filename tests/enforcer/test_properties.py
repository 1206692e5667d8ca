"""Generated payloads never give a 5xx or act on a container no alert names.

Two real containers: the target, which valid firing alerts may name, and a
bystander, which alerts only name in invalid forms (a prefix, upper case,
extra text) or in resolved alerts. Whatever the payload, the bystander keeps
running and no action is recorded on any other ID than the target's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunContainer
from tests.enforcer.harness import Harness, make_alert, make_notification

pytestmark = pytest.mark.docker

ACTED = {"killed", "stopped", "paused", "error"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
odd_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)


def bystander_forms(container_id: str) -> st.SearchStrategy[str]:
    """IDs that point at the bystander but must never be accepted."""
    return st.sampled_from(
        [
            container_id[:12],
            container_id[:63],
            container_id.upper(),
            container_id + "\n",
            container_id + " ",
            f"/{container_id}",
            container_id + "0",
        ]
    ) | odd_text.map(lambda text: container_id + text).filter(
        lambda value: value != container_id
    )


@st.composite
def alerts(draw: st.DrawFn, target: str, bystander: str) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["target", "bystander_invalid", "bystander_resolved", "random"])
    )
    status = draw(st.sampled_from(["firing", "resolved"]))
    if kind == "target":
        container_id = target
    elif kind == "bystander_invalid":
        container_id = draw(bystander_forms(bystander))
    elif kind == "bystander_resolved":
        container_id, status = bystander, "resolved"
    else:
        container_id = draw(
            odd_text | st.text("0123456789abcdef", min_size=64, max_size=64)
        )
    action = draw(st.sampled_from(["kill", "stop", "pause"]) | odd_text)
    alert = make_alert(
        container_id,
        action=action,
        status=status,
        fingerprint=draw(st.text("0123456789abcdef", min_size=16, max_size=16)),
        violation=draw(st.sampled_from(["cpu_spike", "fork_bomb"]) | odd_text),
        name=draw(odd_text),
        extra_labels=draw(st.dictionaries(odd_text, odd_text, max_size=3)),
    )
    if kind == "bystander_resolved":
        # A resolved alert may still carry action=kill and the real ID.
        alert["labels"]["action"] = "kill"
    return alert


@st.composite
def payloads(draw: st.DrawFn, target: str, bystander: str) -> Any:
    shape = draw(st.sampled_from(["notification", "mutated", "json"]))
    if shape == "json":
        return draw(json_values)
    payload = make_notification(
        *draw(st.lists(alerts(target, bystander), max_size=4)),
        status=draw(st.sampled_from(["firing", "resolved"])),
        truncated=draw(st.integers(min_value=0, max_value=5)),
    )
    if shape == "mutated" and payload["alerts"]:
        field = draw(st.sampled_from(sorted(payload["alerts"][0])))
        payload["alerts"][0][field] = draw(json_values)
    return payload


def test_generated_payloads_are_safe(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    target = run_container()
    bystander = run_container()
    harness = Harness(tmp_path, stop_grace_seconds=0, max_actions_per_minute=1000)

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
        ],
    )
    @given(payload=payloads(target.id, bystander.id))
    def check(payload: Any) -> None:
        response = harness.post(json.dumps(payload).encode())
        assert response.status_code < 500, response.get_data(as_text=True)
        assert response.status_code in (200, 400)

    try:
        check()
    finally:
        harness.close()
    bystander.reload()
    acted_on = {
        record["container_id"]
        for record in harness.records()
        if record["result"] in ACTED
    }
    assert bystander.status == "running"
    assert acted_on <= {target.id}
