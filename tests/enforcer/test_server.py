"""The console script serves the app with gunicorn on a real socket."""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunContainer
from tests.enforcer.harness import TOKEN, make_alert, make_notification
from tests.services import Server, ServerFactory, free_port, require, wait_until

pytestmark = pytest.mark.docker

ENFORCER = str(Path(sys.executable).parent / "warden-enforcer")


def start_enforcer(
    servers: ServerFactory,
    tmp_path: Path,
    *flags: str,
    audit: Path | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    argv = [
        ENFORCER,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--webhook.token-file={token_file}",
        f"--audit.path={audit or tmp_path / 'audit.jsonl'}",
        *flags,
    ]
    return servers.start("enforcer", argv, port, ready_path="/healthz", env=env)


def post(server: Server, payload: Any, token: str = TOKEN) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/webhook",
            body=json.dumps(payload),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
            },
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def results(path: Path) -> list[str]:
    lines = path.read_text().split("\n")
    return [json.loads(line)["result"] for line in lines if line]


def test_server_kills_and_is_ready(
    servers: ServerFactory, tmp_path: Path, run_container: RunContainer
) -> None:
    container = run_container()
    server = start_enforcer(servers, tmp_path)
    status, body = post(server, make_notification(make_alert(container.id)))
    container.reload()
    assert status == 200
    assert body["decisions"][0]["result"] == "killed"
    assert container.status == "exited"

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/readyz")
    assert connection.getresponse().status == 200
    connection.close()


def test_simultaneous_deliveries_act_once(
    servers: ServerFactory, tmp_path: Path, run_container: RunContainer
) -> None:
    container = run_container()
    server = start_enforcer(servers, tmp_path)
    payload = make_notification(make_alert(container.id))
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def deliver() -> None:
        barrier.wait()
        statuses.append(post(server, payload)[0])

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = results(tmp_path / "audit.jsonl")
    assert statuses == [200] * 8
    assert found.count("killed") == 1
    assert found.count("duplicate") == 7


def test_two_enforcers_share_one_audit_log(
    servers: ServerFactory, tmp_path: Path, run_container: RunContainer
) -> None:
    # Two enforcers behind the two Alertmanagers of an HA pair, one log.
    container = run_container()
    audit = tmp_path / "audit.jsonl"
    first = start_enforcer(servers, tmp_path, audit=audit)
    second = start_enforcer(servers, tmp_path, audit=audit)
    payload = make_notification(make_alert(container.id))
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def deliver(server: Server) -> None:
        barrier.wait()
        statuses.append(post(server, payload)[0])

    threads = [
        threading.Thread(target=deliver, args=(server,))
        for server in (first, second) * 3
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    found = results(audit)
    assert statuses == [200] * 6
    assert found.count("killed") == 1
    assert found.count("duplicate") == 5


def test_two_enforcers_stop_once(
    servers: ServerFactory, tmp_path: Path, run_container: RunContainer
) -> None:
    # The container ignores SIGTERM, so the first enforcer's stop stays in
    # its grace period until the test kills the container.
    container = run_container(
        "trap 'echo got TERM' TERM; while true; do sleep 0.1; done"
    )
    audit = tmp_path / "audit.jsonl"
    flags = ("--stop.grace-period=120s",)
    first = start_enforcer(servers, tmp_path, *flags, audit=audit)
    second = start_enforcer(servers, tmp_path, *flags, audit=audit)
    payload = make_notification(make_alert(container.id, action="stop"))
    outcome: dict[str, Any] = {}

    def deliver() -> None:
        outcome["status"], outcome["body"] = post(first, payload)

    thread = threading.Thread(target=deliver)
    thread.start()
    wait_until(lambda: b"got TERM" in container.logs(), message="the SIGTERM")
    repeat_status, repeat_body = post(second, payload)
    container.kill()
    thread.join()
    assert repeat_status == 200
    assert repeat_body["decisions"][0]["result"] == "duplicate"
    assert outcome["status"] == 200
    assert outcome["body"]["decisions"][0]["result"] == "stopped"
    assert results(audit) == ["duplicate", "stopped"]


def healthz_status(server: Server) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def test_two_enforcers_stop_independently(
    servers: ServerFactory, tmp_path: Path
) -> None:
    # gunicorn would put a control socket for both at one path in HOME.
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": ""}
    first = start_enforcer(servers, tmp_path, audit=tmp_path / "first.jsonl", env=env)
    second = start_enforcer(servers, tmp_path, audit=tmp_path / "second.jsonl", env=env)
    sockets_while_running = sorted(path.name for path in home.rglob("*"))
    first_status = first.stop()
    second_health = healthz_status(second)
    second_status = second.stop()
    assert sockets_while_running == []
    assert first_status == 0
    assert second_health == 200
    assert second_status == 0
    assert "Control socket" not in first.log()


def test_sigterm_finishes_slow_stop(
    servers: ServerFactory, tmp_path: Path, run_container: RunContainer
) -> None:
    container = run_container("trap '' TERM; while true; do sleep 0.1; done")
    server = start_enforcer(servers, tmp_path, "--stop.grace-period=3s")
    outcome: dict[str, Any] = {}

    def deliver() -> None:
        payload = make_notification(make_alert(container.id, action="stop"))
        outcome["status"], outcome["body"] = post(server, payload)

    thread = threading.Thread(target=deliver)
    thread.start()
    # The stop waits out its 3 s grace period, so after 1 s the request is in
    # flight. The sleep only orders the events; nothing asserts a duration.
    time.sleep(1.0)
    server.process.send_signal(signal.SIGTERM)
    thread.join(timeout=30)
    exit_status = server.process.wait(timeout=30)
    container.reload()
    assert outcome["status"] == 200
    assert outcome["body"]["decisions"][0]["result"] == "stopped"
    assert container.status == "exited"
    assert exit_status == 0


def test_chunked_body_over_limit_rejected(
    servers: ServerFactory, tmp_path: Path, run_container: RunContainer
) -> None:
    container = run_container()
    server = start_enforcer(servers, tmp_path, "--web.max-body-bytes=4KiB")
    payload = make_notification(make_alert(container.id))
    payload["pad"] = "x" * 64 * 1024
    body = json.dumps(payload).encode()

    def chunks() -> Any:
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request(
        "POST",
        "/webhook",
        body=chunks(),
        encode_chunked=True,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {TOKEN}",
        },
    )
    status = connection.getresponse().status
    connection.close()
    container.reload()
    assert status == 413
    assert container.status == "running"


def test_tls_serves_https(servers: ServerFactory, tmp_path: Path) -> None:
    openssl = subprocess.run(["which", "openssl"], capture_output=True)
    require(openssl.returncode == 0, "openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            ENFORCER,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--audit.path={tmp_path / 'audit.jsonl'}",
            f"--web.tls-cert-file={cert}",
            f"--web.tls-key-file={key}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context = ssl.create_default_context(cafile=str(cert))

    def healthz() -> int | None:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=2, context=context
        )
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    try:
        status = wait_until(healthz, timeout=20, message="HTTPS /healthz")
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert status == 200


def alertmanager_config(enforcer_port: int, token_file: Path, **webhook: Any) -> dict:
    return {
        "route": {
            "receiver": "warden",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "warden",
                "webhook_configs": [
                    {
                        "url": f"http://127.0.0.1:{enforcer_port}/webhook",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"credentials_file": str(token_file)}
                        },
                        **webhook,
                    }
                ],
            }
        ],
    }


def push_alerts(alertmanager: Server, alerts: list[dict[str, Any]]) -> None:
    """Send alerts to Alertmanager's API as Prometheus would."""
    body = [
        {
            "labels": alert["labels"],
            "annotations": alert["annotations"],
            "startsAt": alert["startsAt"],
        }
        for alert in alerts
    ]
    connection = http.client.HTTPConnection("127.0.0.1", alertmanager.port, timeout=10)
    connection.request(
        "POST",
        "/api/v2/alerts",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 200


def audit_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n") if line]


def test_alertmanager_delivery_kills_container(
    servers: ServerFactory, tmp_path: Path, run_container: RunContainer
) -> None:
    container = run_container()
    enforcer = start_enforcer(servers, tmp_path)
    alertmanager = servers.alertmanager(
        alertmanager_config(enforcer.port, tmp_path / "token")
    )
    push_alerts(alertmanager, [make_alert(container.id)])
    audit = tmp_path / "audit.jsonl"
    records = wait_until(lambda: audit_records(audit), message="a decision")
    container.reload()
    assert records[0]["result"] == "killed"
    assert records[0]["notification"]["receiver"] == "warden"
    assert container.status == "exited"


def test_alertmanager_truncation_recorded(
    servers: ServerFactory, tmp_path: Path, run_container: RunContainer
) -> None:
    containers = [run_container() for _ in range(5)]
    enforcer = start_enforcer(servers, tmp_path, "--dry-run")
    alertmanager = servers.alertmanager(
        alertmanager_config(enforcer.port, tmp_path / "token", max_alerts=2)
    )
    push_alerts(alertmanager, [make_alert(container.id) for container in containers])
    audit = tmp_path / "audit.jsonl"

    def both_decided() -> list[dict[str, Any]] | None:
        records = audit_records(audit)
        return records if len(records) >= 2 else None

    records = wait_until(both_decided, message="two decisions")
    assert [record["result"] for record in records] == ["dry_run", "dry_run"]
    assert [r["notification"]["truncatedAlerts"] for r in records] == [3, 3]


def test_one_worker_outlasts_grace_period() -> None:
    from flask import Flask
    from gunicorn.workers.gthread import ThreadWorker

    from enforcer.server import THREADS, EnforcerServer
    from enforcer.settings import Settings
    from enforcer.worker import DeadlineThreadWorker

    settings = Settings(stop_grace_seconds=30)
    config = EnforcerServer(lambda: Flask(__name__), settings).cfg
    # One process, so the rate limiter's window covers every request.
    assert config.workers == 1
    assert config.worker_class is DeadlineThreadWorker
    assert issubclass(config.worker_class, ThreadWorker)
    assert config.threads == THREADS
    assert config.graceful_timeout > settings.stop_grace_seconds
    assert config.timeout > settings.stop_grace_seconds
    assert config.bind == ["127.0.0.1:9649"]
