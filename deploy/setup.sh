#!/usr/bin/env bash
# Install what Warden needs on this host, idempotently: the system packages
# (Docker engine, Prometheus, Alertmanager, a static busybox) and a Python
# virtual environment with the project installed in editable mode.
#
# As root with apt-get, missing packages are installed. Otherwise the script
# prints the command to run and exits with status 1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}

# Commands needed, each with the Debian package that provides it.
declare -A package_of=(
  [dockerd]=docker.io
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
)

missing=()
for command in "${!package_of[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${package_of[$command]}")
done
# The test image needs a statically linked busybox, because it is copied
# into an empty root file system.
if ! dpkg -s busybox-static >/dev/null 2>&1 && [[ -z "${WARDEN_BUSYBOX:-}" ]]; then
  missing+=(busybox-static)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: install them as root with: apt-get install ${missing[*]}" >&2
    echo "setup: or set WARDEN_BUSYBOX to a static busybox binary if only busybox-static is missing" >&2
    exit 1
  fi
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: $python is $("$python" --version 2>&1); Warden needs Python 3.11 or newer." >&2
  echo "setup: set PYTHON to a newer interpreter, for example PYTHON=python3.11 make test" >&2
  exit 1
fi

# Reinstall only when pyproject.toml changed since the last install.
stamp=$venv/.warden-installed
if [[ ! -f "$stamp" || "$root/pyproject.toml" -nt "$stamp" ]]; then
  echo "setup: creating the virtual environment in $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e "$root[dev,stack]"
  touch "$stamp"
fi
