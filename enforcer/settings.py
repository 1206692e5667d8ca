"""Settings of the enforcer, built once from flags and the environment.

The flags and their variables are in ``enforcer.flags``. A flag on the
command line wins over the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from enforcer.flags import (
    DEFAULT_AUDIT_PATH,
    DEFAULT_MAX_BODY_BYTES,
    FLAG_NAMES,
    LOG_FORMATS,
    LOG_LEVELS,
    build_parser,
    env_name,
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^(\d+)(B|KiB|MiB|GiB|KB|MB|GB)?$")
_SIZE_UNITS = {
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}
# Docker's rule for container names, so a --protect entry that Docker would
# reject as a name is caught at start rather than silently never matching.
_CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_LABEL_KEY = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-/]*$")


class SettingsError(Exception):
    """A flag or environment variable has a value the enforcer cannot use.

    ``flag`` is always the flag's name. ``source`` is where the value came
    from: the flag, or ``WARDEN_ENFORCER_... (for --flag)`` when the
    environment set it.
    """

    def __init__(self, flag: str, message: str, source: str | None = None) -> None:
        self.flag = flag
        self.message = message
        self.source = source or flag
        super().__init__(f"invalid {self.source}: {message}")


@dataclass(frozen=True)
class ProtectRules:
    """Containers that are never acted on besides the warden.protect label."""

    names: frozenset[str] = frozenset()
    labels: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Settings:
    """Validated settings of one enforcer process."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 9649
    # The webhook bearer token; kept out of repr so it never reaches a log.
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    audit_path: Path = Path(DEFAULT_AUDIT_PATH)
    docker_host: str | None = None
    dry_run: bool = False
    protect: ProtectRules = ProtectRules()
    # Containers acted on, by re.search on the canonical name; None is every one.
    guard_name_regex: re.Pattern[str] | None = None
    max_actions_per_minute: int = 10
    stop_grace_seconds: float = 10.0
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "info"
    log_format: str = "logfmt"
    # Problems that do not stop the start, for the CLI to log once.
    warnings: tuple[str, ...] = ()

    @property
    def listen_address(self) -> str:
        """Return the address in the form gunicorn binds to."""
        if ":" in self.listen_host:
            return f"[{self.listen_host}]:{self.listen_port}"
        return f"{self.listen_host}:{self.listen_port}"

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


def load_settings(
    argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> Settings:
    """Parse flags and environment into validated settings.

    Raises:
        SettingsError: a value is invalid. The message names the flag, or
            the variable and its flag when the environment set the value.
    """
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(list(argv))
    given = {_dest_of(arg) for arg in argv if arg.startswith("--")}
    from_environment: set[str] = set()
    values: dict[str, object] = {}
    try:
        for dest, flag in FLAG_NAMES.items():
            value = getattr(args, dest)
            variable = env_name(flag)
            if dest not in given and variable in environ:
                from_environment.add(flag)
                value = _from_environment(dest, flag, environ[variable])
            values[dest] = value
        return _validate(values)
    except SettingsError as error:
        if error.flag not in from_environment:
            raise
        source = f"{env_name(error.flag)} (for {error.flag})"
        raise SettingsError(error.flag, error.message, source) from None


def _dest_of(arg: str) -> str:
    flag = arg.split("=", 1)[0]
    for dest, name in FLAG_NAMES.items():
        if name == flag:
            return dest
    return ""


def _from_environment(dest: str, flag: str, raw: str) -> object:
    if dest == "dry_run":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("", "0", "false", "no"):
            return False
        raise SettingsError(flag, f"{raw!r} is not a boolean; use true or false")
    if dest == "protect":
        return [raw]
    return raw


def _validate(values: Mapping[str, object]) -> Settings:
    host, port = parse_listen_address(str(values["listen_address"]))
    token_path = _optional_path(values["token_file"])
    token = None
    warnings: list[str] = []
    if token_path is not None:
        token, mode = read_token(token_path)
        if mode & (stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH):
            warnings.append(
                f"--webhook.token-file {str(token_path)!r} has mode "
                f"{mode:04o}, so other users can read or change the token; "
                f"run chmod 600 {token_path}"
            )
    if token is None and not is_loopback(host):
        raise SettingsError(
            "--web.listen-address",
            f"{values['listen_address']!r} is reachable beyond loopback, so "
            "--webhook.token-file is required; set it or listen on 127.0.0.1",
        )

    cert = _optional_path(values["tls_cert_file"])
    key = _optional_path(values["tls_key_file"])
    if (cert is None) != (key is None):
        raise SettingsError(
            "--web.tls-cert-file",
            "TLS needs both --web.tls-cert-file and --web.tls-key-file; "
            "set both or neither",
        )
    for flag, path in (("--web.tls-cert-file", cert), ("--web.tls-key-file", key)):
        if path is not None and not os.access(path, os.R_OK):
            raise SettingsError(flag, f"{str(path)!r} is not a readable file")

    log_level = str(values["log_level"]).lower()
    if log_level not in LOG_LEVELS:
        raise SettingsError(
            "--log.level", f"{log_level!r}; expected one of {', '.join(LOG_LEVELS)}"
        )
    log_format = str(values["log_format"]).lower()
    if log_format not in LOG_FORMATS:
        raise SettingsError(
            "--log.format",
            f"{log_format!r}; expected one of {', '.join(LOG_FORMATS)}",
        )

    audit_path = str(values["audit_path"]).strip()
    if not audit_path:
        raise SettingsError("--audit.path", "empty; give the audit log's file path")
    docker_host = values["docker_host"]

    return Settings(
        listen_host=host,
        listen_port=port,
        token=token,
        token_file=token_path,
        audit_path=Path(audit_path),
        docker_host=str(docker_host) if docker_host else None,
        dry_run=bool(values["dry_run"]),
        protect=parse_protect(values["protect"] or []),  # type: ignore[arg-type]
        guard_name_regex=parse_name_regex(values["guard_name_regex"]),
        max_actions_per_minute=_positive_int(
            "--actions.max-per-minute", str(values["max_actions_per_minute"])
        ),
        stop_grace_seconds=parse_duration(
            "--stop.grace-period", str(values["stop_grace_period"])
        ),
        tls_cert_file=cert,
        tls_key_file=key,
        max_body_bytes=parse_size(
            "--web.max-body-bytes", str(values["max_body_bytes"])
        ),
        log_level=log_level,
        log_format=log_format,
        warnings=tuple(warnings),
    )


def _optional_path(value: object) -> Path | None:
    if value is None or str(value).strip() == "":
        return None
    return Path(str(value))


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port``, or ``:port`` for every interface)."""
    flag = "--web.listen-address"
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\[\]]*):(\d+)", address)
    if match is None:
        raise SettingsError(
            flag, f"{address!r}; expected host:port such as 127.0.0.1:9649"
        )
    host = match.group(1) if match.group(1) is not None else match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise SettingsError(flag, f"port {port} in {address!r}; expected 1-65535")
    return host, port


def is_loopback(host: str) -> bool:
    """Tell whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # An empty host or a host name can resolve to any interface.
        return False


def read_token(path: Path) -> tuple[str, int]:
    """Read the bearer token, without one trailing newline, and its file's mode.

    Raises:
        SettingsError: the file is unreadable, writable by others, or contains
            no token or more than one line. The message names the path,
            never the content.
    """
    flag = "--webhook.token-file"
    try:
        # fstat on the open file, so the mode checked is that of the file read.
        with path.open("rb") as file:
            mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
            data = file.read()
        raw = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise SettingsError(
            flag, f"cannot read {str(path)!r} ({reason}); check the path and mode"
        ) from None
    if mode & stat.S_IWOTH:
        raise SettingsError(
            flag,
            f"{str(path)!r} has mode {mode:04o}, so any user can replace the "
            f"token; run chmod 600 {path}",
        )
    token = raw[:-1] if raw.endswith("\n") else raw
    token = token[:-1] if token.endswith("\r") else token
    if not token.strip():
        raise SettingsError(
            flag, f"{str(path)!r} contains no token; write the token into it"
        )
    if any(char in token for char in "\r\n"):
        raise SettingsError(
            flag, f"{str(path)!r} has more than one line; keep only the token"
        )
    return token, mode


def parse_protect(entries: Sequence[str]) -> ProtectRules:
    """Split ``--protect`` entries into container names and label selectors."""
    names: set[str] = set()
    labels: set[tuple[str, str]] = set()
    for entry in entries:
        for item in (part.strip() for part in entry.split(",")):
            if not item:
                continue
            if "=" in item:
                key, value = item.split("=", 1)
                if not _LABEL_KEY.match(key):
                    raise SettingsError(
                        "--protect",
                        f"label selector {item!r}; expected key=value with a "
                        "label key such as warden.role=monitoring",
                    )
                labels.add((key, value))
            elif _CONTAINER_NAME.match(item):
                names.add(item.lstrip("/"))
            else:
                raise SettingsError(
                    "--protect",
                    f"{item!r} is neither a container name nor key=value",
                )
    return ProtectRules(names=frozenset(names), labels=frozenset(labels))


def parse_name_regex(value: object) -> re.Pattern[str] | None:
    """Compile ``--guard.name-regex``; None when unset or empty."""
    if value is None or str(value) == "":
        return None
    try:
        return re.compile(str(value))
    except re.error as error:
        raise SettingsError(
            "--guard.name-regex",
            f"{str(value)!r} is not a valid Python regular expression ({error}); "
            "fix the pattern, for example ^sandbox-",
        ) from None


def parse_duration(flag: str, raw: str) -> float:
    """Parse a duration such as ``10s``, ``500ms`` or ``2m`` into seconds."""
    match = _DURATION.match(raw.strip())
    if match is None:
        raise SettingsError(
            flag, f"{raw!r}; expected a duration such as 10s, 500ms or 1m"
        )
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(flag: str, raw: str) -> int:
    """Parse a byte count such as ``1048576`` or ``1MiB``."""
    match = _SIZE.match(raw.strip())
    if match is None or int(match.group(1)) == 0:
        raise SettingsError(
            flag, f"{raw!r}; expected a positive size such as 1048576 or 1MiB"
        )
    return int(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"]


def _positive_int(flag: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(flag, f"{raw!r}; expected a positive whole number")
    return value
