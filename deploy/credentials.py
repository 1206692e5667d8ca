"""Secrets of the local stack: the webhook token and Alertmanager's password.

Each ``make up`` writes both afresh into the state folder, readable by their
owner only. Alertmanager gets the password's bcrypt hash in its web config,
Prometheus and amtool read the password from its file, so the password
itself is never on a command line.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml

logger = logging.getLogger(__name__)

# The one user of Alertmanager's web config; the stack, Prometheus, amtool
# and an operator with curl all log in as this user.
ALERTMANAGER_USER = "warden"

# Cost factor of the bcrypt hash, the library's default. One check took
# 0.2 s on the test machine, paid by Alertmanager per login.
BCRYPT_ROUNDS = 12


class CredentialsError(Exception):
    """A secret of the stack is missing from the state folder."""


@dataclass(frozen=True)
class StackCredentials:
    """Paths of the stack's secrets inside one state folder."""

    state: Path

    @property
    def token_path(self) -> Path:
        return self.state / "token"

    @property
    def password_path(self) -> Path:
        return self.state / "alertmanager-password"

    @property
    def web_config_path(self) -> Path:
        return self.state / "alertmanager-web.yml"

    @property
    def http_config_path(self) -> Path:
        return self.state / "alertmanager-http.yml"


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` by a file with ``text`` readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    # Create with mode 0600, so the secret is never readable by others.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def write_token(path: Path) -> str:
    """Write a fresh random webhook token readable by its owner only."""
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


def read_secret(path: Path, what: str) -> str:
    """Read a secret that ``make up`` wrote into the state folder."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise CredentialsError(
            f"{what} file {path} not found; start the stack with `make up` "
            "first or set WARDEN_STATE to the state folder of a running stack"
        ) from None


def read_token(state: Path) -> str:
    """Read the webhook token that ``make up`` wrote into the state folder."""
    return read_secret(StackCredentials(state).token_path, "token")


def read_alertmanager_password(state: Path) -> str:
    """Read the Alertmanager password that ``make up`` wrote."""
    return read_secret(StackCredentials(state).password_path, "Alertmanager password")


def basic_auth_header(password: str, user: str = ALERTMANAGER_USER) -> str:
    """Return the value of an Authorization header for HTTP basic auth."""
    pair = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def write_alertmanager_credentials(credentials: StackCredentials) -> str:
    """Write a fresh Alertmanager password, its web and client configs.

    The web config (exporter-toolkit format) contains only the bcrypt hash.
    The client config is for ``amtool --http.config.file`` and names the
    password file. Returns the password.
    """
    password = secrets.token_urlsafe(24)
    write_private(credentials.password_path, password + "\n")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS))
    web_config = {"basic_auth_users": {ALERTMANAGER_USER: hashed.decode("ascii")}}
    write_private(
        credentials.web_config_path, yaml.safe_dump(web_config, sort_keys=False)
    )
    http_config = {
        "basic_auth": {
            "username": ALERTMANAGER_USER,
            "password_file": str(credentials.password_path),
        }
    }
    write_private(
        credentials.http_config_path, yaml.safe_dump(http_config, sort_keys=False)
    )
    logger.info("wrote Alertmanager credentials into %s", credentials.state)
    return password
