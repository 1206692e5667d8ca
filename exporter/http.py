"""The exporter's HTTP server: metrics, a landing page and a health check.

The server is prometheus_client's WSGI app behind the standard library's
WSGI server with one thread per request, so a slow scrape does not hold up
a health check.
"""

from __future__ import annotations

import html
import logging
import socket
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

TEXT_FORMAT = "text/plain; version=0.0.4"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_LANDING = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Warden exporter</title></head>
<body>
<h1>Warden exporter</h1>
<p>Per-container CPU, memory and PID metrics of this Docker host,
read from the {source}.</p>
<ul>
<li><a href="{path}">Metrics</a></li>
<li><a href="/healthz">Health</a></li>
</ul>
</body>
</html>
"""

_SOURCE_NAMES = {"cgroup": "cgroup files", "api": "Docker stats API"}


def make_app(registry: CollectorRegistry, telemetry_path: str, source: str) -> WsgiApp:
    """Build the WSGI app that serves metrics, ``/`` and ``/healthz``."""
    metrics_app = make_wsgi_app(registry)
    landing = _LANDING.format(
        source=html.escape(_SOURCE_NAMES.get(source, source)),
        path=html.escape(telemetry_path, quote=True),
    ).encode()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == telemetry_path:
            # Always the text format 0.0.4, which every Prometheus accepts:
            # prometheus_client 0.26 takes about twice as long to write
            # OpenMetrics, and these metrics use nothing only it can carry.
            environ["HTTP_ACCEPT"] = TEXT_FORMAT
            return metrics_app(environ, start_response)
        if path == "/":
            return _reply(start_response, "200 OK", "text/html", landing)
        if path == "/healthz":
            return _reply(start_response, "200 OK", "text/plain", b"ok\n")
        return _reply(start_response, "404 Not Found", "text/plain", b"not found\n")

    return app


def _reply(
    start_response: StartResponse, status: str, content_type: str, body: bytes
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", f"{content_type}; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


class ThreadingWsgiServer(ThreadingMixIn, WSGIServer):
    """A WSGI server that handles each request in its own thread."""

    daemon_threads = True


class ThreadingWsgiServerV6(ThreadingWsgiServer):
    """The same server on an IPv6 socket."""

    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """Send the access log to the debug level instead of stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_http_server(host: str, port: int, app: WsgiApp) -> ThreadingWsgiServer:
    """Bind the server; raise OSError when the address is not available."""
    server_class = ThreadingWsgiServerV6 if ":" in host else ThreadingWsgiServer
    server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    assert isinstance(server, ThreadingWsgiServer)
    return server
