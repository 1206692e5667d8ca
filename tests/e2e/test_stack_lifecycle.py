"""`python -m deploy.stack up` runs until a signal and leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.processes import ProcessSpec, check_port_free
from tests.e2e.conftest import PREFIX, require_stack_binaries
from tests.services import free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e]

REPOSITORY = Path(__file__).resolve().parents[2]
PARTS = ("exporter", "enforcer", "prometheus", "alertmanager")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_stack(
    tmp_path: Path, until: str = "Warden is running"
) -> tuple[subprocess.Popen[bytes], Path, dict[str, int]]:
    """Run `python -m deploy.stack up` on free ports until its log shows ``until``."""
    ports = {part: free_port() for part in PARTS}
    environ = {
        **os.environ,
        "WARDEN_STATE": str(tmp_path / "state"),
        "WARDEN_CONTAINER_NAME_REGEX": f"^{PREFIX}",
        **{f"WARDEN_STACK_{part.upper()}_PORT": str(ports[part]) for part in PARTS},
    }
    log = tmp_path / "stack.out"
    with open(log, "wb") as output:
        stack = subprocess.Popen(
            [sys.executable, "-m", "deploy.stack", "up"],
            cwd=REPOSITORY,
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_until(
        lambda: until in log.read_text() or stack.poll() is not None,
        timeout=90,
        message=f"the stack's log to show {until!r}",
    )
    return stack, log, ports


def child_pids(log: Path) -> list[int]:
    """Return the pids of the children, from the stack's "started" lines."""
    return [
        int(pid) for pid in re.findall(r"started \w+ \(pid (\d+)\)", log.read_text())
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stack_up_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    require_stack_binaries()
    stack, log, ports = start_stack(tmp_path)
    try:
        assert "Warden is running" in log.read_text(), log.read_text()
        pids = child_pids(log)
        status, _ = http_get(f"http://127.0.0.1:{ports['prometheus']}/-/ready")
        stack.send_signal(sig)
        exit_status = stack.wait(60)
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()

    assert status == 200
    assert exit_status == 0, log.read_text()
    assert len(pids) == len(PARTS), log.read_text()
    rules = REPOSITORY / "alerts" / "rules.yml"
    assert re.search(rf"rules +\S+/rules/0-rules\.\d+\.yml -> {rules}", log.read_text())
    for pid in pids:
        assert not process_alive(pid), pid
    for part, port in ports.items():
        check_port_free(ProcessSpec(name=part, argv=[], port=port, health_path="/"))


def test_killed_stack_takes_children_along(tmp_path: Path) -> None:
    require_stack_binaries()
    stack, log, ports = start_stack(tmp_path)
    pids = child_pids(log)
    stack.kill()
    stack.wait()

    assert len(pids) == len(PARTS), log.read_text()
    wait_until(
        lambda: not any(process_alive(pid) for pid in pids),
        timeout=30,
        message="the children of a killed stack to exit",
    )
    for part, port in ports.items():
        check_port_free(ProcessSpec(name=part, argv=[], port=port, health_path="/"))


def test_interrupt_during_start_stops_stack(tmp_path: Path) -> None:
    require_stack_binaries()
    # Prometheus starts last; the stack then lines up its rules.
    stack, log, ports = start_stack(tmp_path, until="started prometheus")
    try:
        pids = child_pids(log)
        stack.send_signal(signal.SIGINT)
        status = stack.wait(60)
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait()
    text = log.read_text()
    assert status == 130, text
    assert "stack: stopped during start" in text
    assert "Warden is running" not in text
    wait_until(
        lambda: not any(process_alive(pid) for pid in pids),
        timeout=30,
        message="the children of an interrupted start to exit",
    )
    for part, port in ports.items():
        check_port_free(ProcessSpec(name=part, argv=[], port=port, health_path="/"))
