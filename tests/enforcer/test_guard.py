"""--guard.name-regex limits actions to containers whose name matches."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

from enforcer.settings import SettingsError, load_settings
from tests.conftest import RunContainer
from tests.enforcer.harness import Harness, make_alert, make_notification
from tests.enforcer.test_cli import ENFORCER, run


def status_of(container: docker.models.containers.Container) -> str:
    container.reload()
    return str(container.status)


def test_name_regex_default_is_every_container() -> None:
    assert load_settings([], environ={}).guard_name_regex is None


def test_name_regex_flag_compiled() -> None:
    settings = load_settings(["--guard.name-regex=^sandbox-"], environ={})
    assert settings.guard_name_regex == re.compile("^sandbox-")


def test_name_regex_read_from_environment() -> None:
    environ = {"WARDEN_ENFORCER_GUARD_NAME_REGEX": "judge-[0-9]+"}
    settings = load_settings([], environ=environ)
    assert settings.guard_name_regex == re.compile("judge-[0-9]+")


def test_invalid_name_regex_names_flag() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(["--guard.name-regex=sandbox-("], environ={})
    assert caught.value.flag == "--guard.name-regex"
    assert "'sandbox-('" in str(caught.value)
    assert "regular expression" in str(caught.value)


def test_invalid_name_regex_exits_two() -> None:
    result = run("--guard.name-regex=[a-")
    assert result.returncode == 2
    assert "invalid --guard.name-regex" in result.stderr


def test_invalid_name_regex_variable_exits_two() -> None:
    result = subprocess.run(
        [ENFORCER],
        capture_output=True,
        text=True,
        timeout=60,
        env={"WARDEN_ENFORCER_GUARD_NAME_REGEX": "*x", "PATH": "/usr/bin"},
    )
    assert result.returncode == 2
    assert "WARDEN_ENFORCER_GUARD_NAME_REGEX" in result.stderr


@pytest.mark.docker
def test_unmatched_name_is_never_acted_on(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    name = f"warden-db-{uuid.uuid4().hex[:8]}"
    container = run_container(name=name)
    harness = Harness(tmp_path, guard_name_regex=re.compile("^warden-sandbox-"))
    harness.post(make_notification(make_alert(container.id, name=name)))
    harness.close()
    record = harness.records()[0]
    assert record["result"] == "skipped_protected"
    assert "outside the guarded set" in record["reason"]
    assert "'^warden-sandbox-'" in record["reason"]
    assert status_of(container) == "running"


@pytest.mark.docker
def test_matched_name_is_acted_on(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    name = f"warden-sandbox-{uuid.uuid4().hex[:8]}"
    container = run_container(name=name)
    harness = Harness(tmp_path, guard_name_regex=re.compile("sandbox-"))
    harness.post(make_notification(make_alert(container.id, name=name)))
    harness.close()
    assert harness.results() == ["killed"]
    assert status_of(container) == "exited"


@pytest.mark.docker
def test_name_regex_checks_live_name_not_label(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    # An alert can claim any name; only the engine's name counts.
    name = f"warden-db-{uuid.uuid4().hex[:8]}"
    container = run_container(name=name)
    harness = Harness(tmp_path, guard_name_regex=re.compile("^warden-sandbox-"))
    alert = make_alert(container.id, name="warden-sandbox-1")
    harness.post(make_notification(alert))
    harness.close()
    assert harness.results() == ["skipped_protected"]
    assert status_of(container) == "running"


@pytest.mark.docker
def test_renamed_container_acted_on_with_note(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    name = f"warden-renamed-{uuid.uuid4().hex[:8]}"
    container = run_container(name=name)
    harness = Harness(tmp_path)
    harness.post(make_notification(make_alert(container.id, name="old-name")))
    harness.close()
    record = harness.records()[0]
    assert record["result"] == "killed"
    assert "name label 'old-name' differs" in record["reason"]
    assert f"container's name {name}" in record["reason"]


@pytest.mark.docker
def test_matching_name_label_adds_no_note(
    tmp_path: Path, docker_client: object, run_container: RunContainer
) -> None:
    name = f"warden-same-{uuid.uuid4().hex[:8]}"
    container = run_container(name=name)
    harness = Harness(tmp_path)
    harness.post(make_notification(make_alert(container.id, name=name)))
    harness.close()
    assert harness.records()[0]["reason"] == "kill succeeded"
