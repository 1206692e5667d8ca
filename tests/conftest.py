"""Fixtures shared by the whole suite: a real Docker engine and real servers.

Tests that need the engine use ``docker_client`` and start containers with
``run_container``. Without an engine they skip, except under CI=true, where
they fail.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.services import IN_CI, ServerFactory, require

TEST_IMAGE = os.environ.get("WARDEN_TEST_IMAGE", "warden-busybox:latest")

# Every container a test starts carries this label, so that a crashed run
# can be cleaned up with: docker rm -f $(docker ps -aq -f label=warden.test)
TEST_LABEL = "warden.test"
RUN_ID = uuid.uuid4().hex[:8]

RunContainer = Callable[..., Container]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """Return a client of the real engine, or skip (fail under CI=true)."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        require(
            False, f"no Docker engine responds: {error}; run deploy/engine.sh start"
        )
        raise
    try:
        client.images.get(TEST_IMAGE)
    except docker.errors.ImageNotFound:
        require(
            False, f"test image {TEST_IMAGE} is missing; run deploy/engine.sh start"
        )
    yield client
    client.close()


@pytest.fixture
def run_container(docker_client: docker.DockerClient) -> Iterator[RunContainer]:
    """Start containers of the test image with no network; remove them after.

    Takes the keyword arguments of ``docker_client.containers.run``; ``command``
    is a shell command line run by ``sh -c``.
    """
    started: list[Container] = []

    def run(command: str = "sleep 3600", **kwargs: Any) -> Container:
        labels = {TEST_LABEL: RUN_ID, **kwargs.pop("labels", {})}
        container = docker_client.containers.run(
            kwargs.pop("image", TEST_IMAGE),
            ["sh", "-c", command],
            detach=True,
            network_mode="none",
            labels=labels,
            **kwargs,
        )
        started.append(container)
        return container

    yield run
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start real servers on loopback for one test; stop them after it."""
    factory = ServerFactory(tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture(autouse=True)
def _clean_warden_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop WARDEN_* variables so that no test inherits another's settings."""
    for name in list(os.environ):
        if name.startswith(("WARDEN_EXPORTER_", "WARDEN_ENFORCER_")):
            monkeypatch.delenv(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a CI run that skipped tests, whatever skipped them."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not IN_CI or reporter is None:
        return
    skipped = len(reporter.stats.get("skipped", []))
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"CI=true: {skipped} tests were skipped, and under CI a missing "
            "component is a failure. Install it with deploy/setup.sh.",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
