"""Decisions in progress: the audit lock is free during Docker calls.

The containers here trap SIGTERM and print a line instead of exiting, so
a stop stays in its grace period until the test kills the container. The
order of the audit records then shows which decision finished first,
without measuring any duration.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from enforcer.audit import AuditLog
from tests.conftest import RunContainer
from tests.enforcer.harness import TOKEN, Harness, make_alert, make_notification
from tests.services import wait_until

STUBBORN = "trap 'echo got TERM' TERM; while true; do sleep 0.1; done"
KEY = "5555555555555555@2026-01-01T00:00:00Z"


@pytest.fixture
def harness(tmp_path: Path, docker_client: object) -> Iterator[Harness]:
    # A grace period far longer than the test, so that only the test's own
    # kill ends the stop.
    harness = Harness(tmp_path, stop_grace_seconds=120)
    yield harness
    harness.close()


def got_sigterm(container: docker.models.containers.Container) -> bool:
    return b"got TERM" in container.logs()


def end_stop(container: docker.models.containers.Container) -> None:
    # Docker returns 409 when the stop already ended, and the asserts that
    # follow then say what went wrong.
    with contextlib.suppress(docker.errors.APIError):
        container.kill()


def post_in_thread(harness: Harness, payload: dict) -> threading.Thread:
    client = harness.app.test_client()
    thread = threading.Thread(
        target=client.post,
        args=("/webhook",),
        kwargs={
            "json": payload,
            "headers": {"Authorization": f"Bearer {TOKEN}"},
        },
    )
    thread.start()
    return thread


@pytest.mark.docker
def test_stop_in_grace_period_delays_no_kill(
    harness: Harness, run_container: RunContainer
) -> None:
    stopping = run_container(STUBBORN)
    target = run_container()
    stop = post_in_thread(
        harness, make_notification(make_alert(stopping.id, action="stop"))
    )
    wait_until(lambda: got_sigterm(stopping), message="the stop's SIGTERM")

    response = harness.post(make_notification(make_alert(target.id)))
    results_during_stop = harness.results()
    stop_in_flight = stop.is_alive()
    end_stop(stopping)
    stop.join()
    assert response.status_code == 200
    assert stop_in_flight
    assert results_during_stop == ["killed"]
    assert harness.results() == ["killed", "stopped"]


@pytest.mark.docker
def test_concurrent_stop_duplicates_act_once(
    harness: Harness, run_container: RunContainer
) -> None:
    container = run_container(STUBBORN)
    payload = make_notification(make_alert(container.id, action="stop"))
    first = post_in_thread(harness, payload)
    wait_until(lambda: got_sigterm(container), message="the stop's SIGTERM")
    repeats = [post_in_thread(harness, payload) for _ in range(3)]
    for thread in repeats:
        thread.join()

    records_during_stop = harness.records()
    end_stop(container)
    first.join()
    records = harness.records()
    assert [record["result"] for record in records_during_stop] == ["duplicate"] * 3
    assert [record["reason"] for record in records_during_stop] == [
        "another request is deciding this alert occurrence"
    ] * 3
    assert [record["result"] for record in records] == ["duplicate"] * 3 + ["stopped"]


def test_claim_excludes_other_threads(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    with log.locked():
        first = log.claim(KEY)
        second = log.claim(KEY)
    log.release(KEY)
    with log.locked():
        after_release = log.claim(KEY)
    log.close()
    assert first
    assert not second
    assert after_release


CLAIM_AND_WAIT = """
import sys
from pathlib import Path
from enforcer.audit import AuditLog

log = AuditLog(Path(sys.argv[1]))
with log.locked():
    print("claimed" if log.claim(sys.argv[2]) else "refused", flush=True)
sys.stdin.readline()
"""


def test_claim_excludes_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(path), KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    holder_output = holder.stdout.readline().strip()
    with log.locked():
        while_held = log.claim(KEY)
    # The holder exits without calling release, and the kernel drops its claim.
    holder.stdin.write("\n")
    holder.stdin.close()
    holder.wait(timeout=30)
    with log.locked():
        after_exit = log.claim(KEY)
    log.close()
    assert holder_output == "claimed"
    assert not while_held
    assert after_exit


def test_duplicate_record_leaves_key_undecided(tmp_path: Path) -> None:
    # A duplicate recorded while another request decides the key must not
    # outlive that request's error.
    log = AuditLog(tmp_path / "audit.jsonl")
    with log.locked():
        log.append({"result": "duplicate", "alert": {"key": KEY}})
        log.append({"result": "error", "alert": {"key": KEY}})
        decided = log.is_decided(KEY)
    log.close()
    assert not decided
