"""Audit log behaviour across processes: one decision per key, real faults.

Each test starts child processes with multiprocessing; the functions the
children run are at module level so that the spawn start method can
import them.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import signal
import threading
import time
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from enforcer.audit import AuditError, AuditLog, verify_chain

PROCESSES = 6

# The log a forked child inherits from the test process.
inherited_log: AuditLog | None = None


def decide(log: AuditLog, key: str) -> None:
    with log.locked():
        decided = log.is_decided(key)
        # Widens the window between check and append, so that two
        # processes holding the lock at once would both see "not decided".
        time.sleep(0.02)
        log.append(
            {
                "result": "duplicate" if decided else "killed",
                "alert": {"key": key},
            }
        )


def decide_in_new_log(path: str, keys: list[str], barrier: Any) -> None:
    log = AuditLog(Path(path))
    for key in keys:
        barrier.wait()
        decide(log, key)


def decide_in_inherited_log(keys: list[str], barrier: Any) -> None:
    assert inherited_log is not None
    for key in keys:
        barrier.wait()
        decide(inherited_log, key)


def append_one(key: str) -> None:
    assert inherited_log is not None
    with inherited_log.locked():
        inherited_log.append({"result": "killed", "alert": {"key": key}})


def append_over_size_limit(path: str, results: Any) -> None:
    log = AuditLog(Path(path))
    size = Path(path).stat().st_size
    # Past the limit the kernel sends SIGXFSZ; ignored, write fails EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 50, resource.RLIM_INFINITY))
    try:
        with log.locked():
            log.append({"result": "killed", "alert": {"key": "big"}, "pad": "x" * 500})
    except AuditError as error:
        results.put(("AuditError", str(error)))
    else:
        results.put(("no error", ""))


def run_all(context: BaseContext, target: Any, *args: Any) -> None:
    children = [context.Process(target=target, args=args) for _ in range(PROCESSES)]  # type: ignore[attr-defined]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    for child in children:
        assert child.exitcode == 0


def results_by_key(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        item = json.loads(line)
        found.setdefault(item["alert"]["key"], []).append(item["result"])
    return found


KEYS = [f"{number:016x}@2026-01-01T00:00:00Z" for number in range(5)]


def test_processes_decide_each_key_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)

    run_all(context, decide_in_new_log, str(path), KEYS, barrier)
    found = results_by_key(path)

    for key in KEYS:
        assert sorted(found[key]) == ["duplicate"] * (PROCESSES - 1) + ["killed"]
    assert verify_chain(path).ok


def test_forked_processes_decide_once(tmp_path: Path) -> None:
    global inherited_log
    path = tmp_path / "audit.jsonl"
    inherited_log = AuditLog(path)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)

    try:
        run_all(context, decide_in_inherited_log, KEYS, barrier)
    finally:
        inherited_log = None
    found = results_by_key(path)

    for key in KEYS:
        assert found[key].count("killed") == 1
    assert verify_chain(path).ok


def test_file_size_limit_leaves_no_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    with log.locked():
        log.append({"result": "killed", "alert": {"key": "first"}})
    before = path.read_bytes()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()

    child = context.Process(target=append_over_size_limit, args=(str(path), results))
    child.start()
    kind, message = results.get(timeout=60)
    child.join(timeout=60)

    assert kind == "AuditError"
    assert "File too large" in message
    assert path.read_bytes() == before
    assert verify_chain(path).ok


def test_fork_while_thread_holds_lock(tmp_path: Path) -> None:
    global inherited_log
    path = tmp_path / "audit.jsonl"
    inherited_log = AuditLog(path)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        assert inherited_log is not None
        with inherited_log.locked():
            holding.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(timeout=60)
    try:
        child = multiprocessing.get_context("fork").Process(
            target=append_one, args=("from-child",)
        )
        child.start()
    finally:
        release.set()
        holder.join()
        inherited_log = None
    # A child that inherited the held thread lock would wait forever.
    child.join(timeout=60)
    if child.exitcode is None:
        child.kill()

    assert child.exitcode == 0
    assert results_by_key(path) == {"from-child": ["killed"]}
