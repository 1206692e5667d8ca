"""Stateful property test: the audit log against a model of its decisions."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from enforcer.audit import UNDECIDED_RESULTS, AuditLog, verify_chain

KEYS = [f"{number:016x}@2026-01-01T00:00:00Z" for number in range(4)]
RESULTS = [
    "killed",
    "duplicate",
    "skipped_stale",
    "skipped_resolved",
    "error",
    "rate_limited",
]


class AuditLogMachine(RuleBasedStateMachine):
    """Appends, restarts, a second writer and torn writes, in any order."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="audit-state-"))
        self.path = self.folder / "audit.jsonl"
        self.log = AuditLog(self.path)
        self.other = AuditLog(self.path)
        self.decided: set[str] = set()
        self.records = 0
        self.torn = 0

    def _record(self, key: str, result: str) -> None:
        if result not in UNDECIDED_RESULTS:
            self.decided.add(key)
        self.records += 1

    @rule(key=st.sampled_from(KEYS), result=st.sampled_from(RESULTS))
    def append(self, key: str, result: str) -> None:
        with self.log.locked():
            self.log.append({"result": result, "alert": {"key": key}})
        self._record(key, result)

    @rule(key=st.sampled_from(KEYS), result=st.sampled_from(RESULTS))
    def append_from_other_writer(self, key: str, result: str) -> None:
        with self.other.locked():
            self.other.append({"result": result, "alert": {"key": key}})
        self._record(key, result)

    @rule()
    def restart(self) -> None:
        self.log.close()
        self.log = AuditLog(self.path)

    @rule(fragment=st.sampled_from([b'{"alert":{"ke', b"{", b"\0\0\0", b"x"]))
    def tear_last_write(self, fragment: bytes) -> None:
        with open(self.path, "ab") as file:
            file.write(fragment)
        self.torn += 1

    @invariant()
    def decided_keys_match_model(self) -> None:
        with self.log.locked():
            for key in KEYS:
                assert self.log.is_decided(key) == (key in self.decided)

    @invariant()
    def chain_unbroken_apart_from_torn_lines(self) -> None:
        result = verify_chain(self.path)

        assert len(result.torn_lines) == self.torn
        assert result.lines == self.records + self.torn
        assert "prev_sha256" not in result.reason

    def teardown(self) -> None:
        self.log.close()
        self.other.close()
        shutil.rmtree(self.folder)


AuditLogMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30)
test_audit_log_matches_model = AuditLogMachine.TestCase
