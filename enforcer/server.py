"""Serve the enforcer's app with gunicorn, embedded in the console script.

One worker process with threads: the rate limiter lives in memory, so it
must be shared by every request. SIGTERM stops accepting connections and
lets the requests in flight finish, for up to the graceful timeout.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from enforcer.settings import Settings

logger = logging.getLogger(__name__)

# Threads that serve requests. A stalled client keeps one busy for at most
# worker.REQUEST_READ_SECONDS, and it takes as many stalled clients as
# threads to delay Alertmanager's request at all.
THREADS = 64
LIMIT_REQUEST_LINE = 2048
LIMIT_REQUEST_FIELDS = 50
LIMIT_REQUEST_FIELD_SIZE = 4096
# Time a request may take beyond the stop grace period (Docker's own work,
# the audit fsync) before gunicorn gives up on it at shutdown.
SHUTDOWN_MARGIN = 20


class EnforcerServer(BaseApplication):
    """A gunicorn application that builds the Flask app inside its worker."""

    def __init__(self, app_factory: Callable[[], Flask], settings: Settings) -> None:
        self.app_factory = app_factory
        self.settings = settings
        super().__init__()

    def gunicorn_options(self) -> dict[str, Any]:
        """Return the gunicorn settings derived from the enforcer's settings."""
        settings = self.settings
        # A stop request may wait the whole grace period for the container.
        request_seconds = math.ceil(settings.stop_grace_seconds + SHUTDOWN_MARGIN)
        options: dict[str, Any] = {
            "bind": [settings.listen_address],
            "workers": 1,
            "worker_class": "enforcer.worker.DeadlineThreadWorker",
            "threads": THREADS,
            "timeout": request_seconds,
            "graceful_timeout": request_seconds,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": settings.log_level,
            "proc_name": "warden-enforcer",
            # The webhook needs a short request line and a few headers, so
            # gunicorn's limits (4094, 100 and 8190 bytes) are lowered. The
            # body limit is the app's --web.max-body-bytes.
            "limit_request_line": LIMIT_REQUEST_LINE,
            "limit_request_fields": LIMIT_REQUEST_FIELDS,
            "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        }
        # gunicorn 25.1 and later open a control socket for gunicornc at
        # $XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/gunicorn.ctl. Every
        # enforcer of one user would share that path, each new one taking it
        # over and each stopping one removing it. The enforcer needs none.
        if "control_socket_disable" in self.cfg.settings:
            options["control_socket_disable"] = True
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            options["certfile"] = str(settings.tls_cert_file)
            options["keyfile"] = str(settings.tls_key_file)
        return options

    def load_config(self) -> None:
        for key, value in self.gunicorn_options().items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        # Called in the worker after the fork, so that the Docker client's
        # connections are never shared between processes.
        return self.app_factory()
