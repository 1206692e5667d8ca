#!/usr/bin/env bash
# Run a command with a Docker engine available, and the test image built.
#
#   deploy/engine.sh run -- COMMAND...   start an engine if none responds, run
#                                        COMMAND, stop the engine again if this
#                                        script started it; exits with
#                                        COMMAND's status. SIGTERM, SIGINT and
#                                        SIGHUP are passed on to COMMAND.
#   deploy/engine.sh start               start an engine if none responds
#   deploy/engine.sh stop                stop the engine this script started
#
# The engine is started with no bridge network and no iptables rules, so no
# container can reach any network. Its pid and log are kept in the state
# folder ($WARDEN_STATE, default .warden/ at the repository root).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${WARDEN_STATE:-$root/.warden}
pid_file=$state/dockerd.pid
image=${WARDEN_TEST_IMAGE:-warden-busybox:latest}
busybox=${WARDEN_BUSYBOX:-/bin/busybox}

engine_responds() {
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

start_engine() {
  mkdir -p "$state"
  if engine_responds; then
    return 0
  fi
  if [[ -n "${DOCKER_HOST:-}" ]]; then
    echo "engine: DOCKER_HOST=$DOCKER_HOST does not respond; start that engine or unset DOCKER_HOST" >&2
    return 1
  fi

  if [[ $(id -u) -ne 0 ]]; then
    echo "engine: no Docker engine responds and starting one needs root; run as root or start dockerd yourself" >&2
    return 1
  fi

  echo "engine: starting dockerd (log: $state/dockerd.log)"
  dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
    >"$state/dockerd.log" 2>&1 &
  echo $! >"$pid_file"

  for _ in $(seq 1 60); do
    if engine_responds; then
      return 0
    fi
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      echo "engine: dockerd exited during start; last lines of $state/dockerd.log:" >&2
      tail -n 20 "$state/dockerd.log" >&2
      rm -f "$pid_file"
      return 1
    fi
    sleep 0.5
  done
  echo "engine: dockerd did not respond within 30 s; see $state/dockerd.log" >&2
  return 1
}

stop_engine() {
  [[ -f "$pid_file" ]] || return 0
  local pid
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    echo "engine: stopping the dockerd this script started (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pid_file"
}

# Build a test image from the host's static busybox: no image can be pulled.
build_image() {
  docker image inspect "$image" >/dev/null 2>&1 && return 0
  if [[ ! -x "$busybox" ]]; then
    echo "engine: $busybox not found; install busybox-static or set WARDEN_BUSYBOX" >&2
    return 1
  fi
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,tmp,proc,sys,dev/shm,etc}
  cp "$busybox" "$rootfs/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
  done
  echo "engine: building $image from $busybox"
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
  rm -rf "$rootfs"
}

case "${1:-}" in
  start)
    start_engine
    build_image
    ;;
  stop)
    stop_engine
    ;;
  run)
    shift
    [[ "${1:-}" == -- ]] && shift
    if engine_responds; then
      # Nothing to stop afterwards: become the command, so that signals
      # reach it directly.
      build_image
      exec "$@"
    fi
    start_engine
    build_image || { stop_engine; exit 1; }
    # Run the command in the background and pass on each signal, since bash
    # waits for a foreground child before it runs a trap. Job control gives
    # the command its own process group, so a Ctrl-C reaches it once, from
    # the trap, and it does not start with SIGINT ignored.
    # NOTE: in its own group the command cannot read the terminal (a read
    # stops it with SIGTTIN), so `pytest --pdb` needs an engine running.
    set -m
    "$@" &
    child=$!
    set +m
    forward() {
      kill -"$1" "$child" 2>/dev/null || true
    }
    trap 'forward TERM' TERM
    trap 'forward INT' INT
    trap 'forward HUP' HUP
    # wait returns early when a trapped signal arrives; wait again until the
    # command has exited, then once more for its status.
    while kill -0 "$child" 2>/dev/null; do
      wait "$child" || true
    done
    status=0
    wait "$child" || status=$?
    trap - TERM INT HUP
    stop_engine
    exit "$status"
    ;;
  *)
    echo "usage: $0 start | stop | run -- COMMAND..." >&2
    exit 2
    ;;
esac
