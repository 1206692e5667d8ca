"""`deploy/engine.sh run` passes signals on and leaves nothing behind.

With an engine running, `make up` under SIGTERM is tested for real. The
script also starts and later stops its own dockerd when no engine runs.
The test machine always has an engine, so for that path a stand-in
`docker` and `dockerd` on PATH take the engine's place.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.processes import ProcessSpec, check_port_free
from tests.services import free_port, require_binary, wait_until

REPOSITORY = Path(__file__).resolve().parent.parent
ENGINE = REPOSITORY / "deploy" / "engine.sh"
PARTS = ("exporter", "enforcer", "prometheus", "alertmanager")

# A command that records its pid, then exits 100 + the number of the first
# signal it gets.
SIGNAL_RECORDER = """\
import os, signal, sys, time
def leave(number, frame):
    sys.exit(100 + number)
for name in ("SIGTERM", "SIGINT", "SIGHUP"):
    signal.signal(getattr(signal, name), leave)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(120)
sys.exit(1)
"""

# Stand-ins: `docker version` succeeds once the stand-in dockerd runs, and
# `dockerd` sleeps until it gets SIGTERM.
FAKE_DOCKER = """\
#!/bin/sh
pid_file="$WARDEN_STATE/dockerd.pid"
case "$1" in
  version) [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null ;;
  image) exit 0 ;;
  *) exit 1 ;;
esac
"""
FAKE_DOCKERD = "#!/bin/sh\nexec sleep 300\n"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose here.
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


def default_signal_handlers() -> None:
    """Reset the forwarded signals to their defaults in the child.

    A test run started under nohup, or in the background of a
    non-interactive shell, ignores SIGHUP or SIGINT, and bash cannot trap a
    signal that was ignored when it started. A user's shell starts
    engine.sh with the default handlers, so the test does too.
    """
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_make_up_stops_on_sigterm(tmp_path: Path) -> None:
    make = require_binary("make")
    for name in ("prometheus", "prometheus-alertmanager", "promtool", "amtool"):
        require_binary(name)
    ports = {part: free_port() for part in PARTS}
    log = tmp_path / "make.out"
    environ = {
        **os.environ,
        "WARDEN_STATE": str(tmp_path / "state"),
        "WARDEN_CONTAINER_NAME_REGEX": f"^warden-engine-test-{os.getpid()}-",
        **{f"WARDEN_STACK_{part.upper()}_PORT": str(ports[part]) for part in PARTS},
    }
    with open(log, "wb") as output:
        # -o setup: the environment is installed already; skip the check.
        top = subprocess.Popen(
            [make, "--no-print-directory", "-o", "setup", "up"],
            cwd=REPOSITORY,
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "Warden is running" in log.read_text() or top.poll() is not None,
            timeout=90,
            message="make up to report that the stack is running",
        )
        pids = [int(pid) for pid in re.findall(r"pid (\d+)\)", log.read_text())]
        top.send_signal(signal.SIGTERM)
        top.wait(60)
        wait_until(
            lambda: not any(process_alive(pid) for pid in pids),
            timeout=30,
            message="every child of the stack to exit",
        )
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()
    assert len(pids) == len(PARTS), log.read_text()
    assert "stack: stopped" in log.read_text()
    for part, port in ports.items():
        check_port_free(ProcessSpec(name=part, argv=[], port=port, health_path="/"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_run_forwards_signal_and_stops_engine(
    tmp_path: Path, sig: signal.Signals
) -> None:
    require_binary("bash")
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    write_script(bin_folder / "docker", FAKE_DOCKER)
    write_script(bin_folder / "dockerd", FAKE_DOCKERD)
    state = tmp_path / "state"
    pid_file = tmp_path / "command.pid"
    environ = {
        **{key: value for key, value in os.environ.items() if key != "DOCKER_HOST"},
        "PATH": f"{bin_folder}:{os.environ['PATH']}",
        "WARDEN_STATE": str(state),
    }
    script = subprocess.Popen(
        [
            str(ENGINE),
            "run",
            "--",
            sys.executable,
            "-c",
            SIGNAL_RECORDER,
            str(pid_file),
        ],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=default_signal_handlers,
    )
    try:
        wait_until(
            lambda: pid_file.exists() and pid_file.read_text() != "",
            timeout=30,
            message="the command to start under engine.sh",
        )
        command_pid = int(pid_file.read_text())
        engine_pid = int((state / "dockerd.pid").read_text())
        script.send_signal(sig)
        status = script.wait(60)
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
    output = script.stdout.read().decode() if script.stdout else ""
    assert status == 100 + sig, output
    assert not process_alive(command_pid)
    assert not process_alive(engine_pid), output
    assert not (state / "dockerd.pid").exists()
