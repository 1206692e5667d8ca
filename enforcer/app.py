"""The enforcer's Flask app: webhook, audit events, metrics and health.

``create_app`` takes every dependency, so tests drive the same app through
``test_client()`` that gunicorn serves in production.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any, NoReturn

from flask import Flask, Response, abort, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from werkzeug.exceptions import HTTPException

from enforcer.audit import AuditError, AuditLog
from enforcer.auth import bearer_matches
from enforcer.decisions import Decider, NotificationContext, own_container_ids
from enforcer.docker_api import DockerBackend, DockerUnavailableError
from enforcer.metrics import EnforcerMetrics
from enforcer.payload import PayloadError, parse_notification
from enforcer.ratelimit import SlidingWindowLimiter
from enforcer.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_EVENTS_LIMIT = 100
MAX_EVENTS_LIMIT = 1000


def create_app(
    settings: Settings,
    docker: DockerBackend,
    audit: AuditLog,
    registry: CollectorRegistry,
    *,
    own_ids: Iterable[str] | None = None,
) -> Flask:
    """Build the app; ``own_ids`` overrides detection of the own container."""
    metrics = EnforcerMetrics(registry)
    decider = Decider(
        docker=docker,
        audit=audit,
        metrics=metrics,
        limiter=SlidingWindowLimiter(settings.max_actions_per_minute),
        protect=settings.protect,
        guard_name_regex=settings.guard_name_regex,
        own_container_ids=own_container_ids() if own_ids is None else own_ids,
        stop_grace_seconds=settings.stop_grace_seconds,
        dry_run=settings.dry_run,
    )

    try:
        docker.ping()
        metrics.docker_up.set(1)
    except DockerUnavailableError as error:
        # Not fatal: /readyz reports it, and webhooks get 503 until it responds.
        logger.warning("Docker is unavailable at start: %s", error)

    app = Flask(__name__)
    # Werkzeug stops reading any body, chunked ones included, at this many
    # bytes. One byte more than the limit distinguishes a body of exactly the
    # limit from a longer one, which the webhook view then rejects with 413.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]

    def authorize() -> None:
        if settings.token is None:
            return
        if not bearer_matches(request.headers.get("Authorization"), settings.token):
            # Debug only: anyone who can connect could flood the log.
            # warden_enforcer_requests_total{code="401"} counts them.
            logger.debug(
                "rejected request without a valid token: path=%s remote=%s",
                request.path,
                request.remote_addr,
            )
            abort(401)

    def unavailable(reason: str) -> NoReturn:
        abort(
            Response(
                json.dumps({"error": reason, "request_id": g.request_id}),
                status=503,
                mimetype="application/json",
                headers={"Retry-After": "10"},
            )
        )

    @app.before_request
    def start_request() -> None:
        g.received_at = time.monotonic()
        g.request_id = uuid.uuid4().hex

    @app.after_request
    def count_response(response: Response) -> Response:
        metrics.requests.labels(code=str(response.status_code)).inc()
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if error.response is not None:
            return error.response
        if error.code in (400, 413, 415):
            # Only requests with a valid token get this far.
            logger.warning(
                "rejected request: status=%d path=%s reason=%s request_id=%s",
                error.code,
                request.path,
                error.description,
                g.get("request_id", ""),
            )
        # A 401 body gives no reason, so a caller cannot probe the token.
        message = "unauthorized" if error.code == 401 else error.description
        response = jsonify(error=message)
        response.status_code = error.code or 500
        if error.code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> tuple[Response, int]:
        logger.exception(
            "request failed: method=%s path=%s request_id=%s",
            request.method,
            request.path,
            g.get("request_id", ""),
        )
        return jsonify(error="internal error; see the enforcer log"), 500

    @app.post("/webhook")
    def webhook() -> tuple[Response, int]:
        authorize()
        if not request.is_json:
            abort(
                415,
                f"content type {request.mimetype or 'none'!r}; send application/json",
            )
        if (request.content_length or 0) > settings.max_body_bytes:
            abort(
                413,
                f"body of {request.content_length} bytes; at most "
                f"{settings.max_body_bytes} (--web.max-body-bytes)",
            )
        body = request.get_data(cache=False)
        if len(body) > settings.max_body_bytes:
            abort(
                413,
                f"body of more than {settings.max_body_bytes} bytes "
                "(--web.max-body-bytes)",
            )
        document = _decode_json(body)
        try:
            notification = parse_notification(document)
        except PayloadError as error:
            logger.warning(
                "rejected invalid webhook payload: %s request_id=%s",
                error,
                g.request_id,
            )
            return jsonify(error=str(error), field=error.field), 400

        if notification.truncated_alerts:
            metrics.truncated_alerts.inc(notification.truncated_alerts)
            logger.warning(
                "notification lists %d alerts and left out %d more; raise "
                "max_alerts in the Alertmanager webhook config: groupKey=%s "
                "request_id=%s",
                len(notification.alerts),
                notification.truncated_alerts,
                notification.group_key,
                g.request_id,
            )

        try:
            audit.check_writable()
        except AuditError as error:
            metrics.audit_errors.inc()
            logger.error("audit log is not writable: %s", error)
            unavailable("audit log is not writable; nothing was decided")

        context = NotificationContext(
            request_id=g.request_id,
            received_at=g.received_at,
            receiver=notification.receiver,
            group_key=notification.group_key,
            truncated_alerts=notification.truncated_alerts,
        )
        try:
            records = decider.handle(notification.alerts, context)
        except DockerUnavailableError as error:
            logger.error("Docker is unavailable: %s request_id=%s", error, g.request_id)
            unavailable("Docker API is unavailable; retry later")
        except AuditError as error:
            metrics.audit_errors.inc()
            logger.error(
                "audit log write failed: %s request_id=%s", error, g.request_id
            )
            unavailable("audit log write failed; retry later")

        decisions = [
            {
                "key": record["alert"]["key"],
                "container_id": record["container_id"],
                "result": record["result"],
                "reason": record["reason"],
            }
            for record in records
        ]
        return jsonify(request_id=g.request_id, decisions=decisions), 200

    @app.get("/events")
    def events() -> Response:
        authorize()
        container = request.args.get("container") or None
        since = request.args.get("since") or None
        limit = _events_limit(request.args.get("limit"))
        try:
            found = audit.events(container=container, since=since, limit=limit)
        except ValueError as error:
            abort(400, str(error))
        except AuditError as error:
            metrics.audit_errors.inc()
            logger.error("audit log read failed: %s", error)
            unavailable("audit log is not readable")
        return jsonify(events=list(found))

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        problems = []
        try:
            docker.ping()
            metrics.docker_up.set(1)
        except DockerUnavailableError as error:
            metrics.docker_up.set(0)
            problems.append(f"docker: {error}")
        try:
            audit.check_writable()
        except AuditError as error:
            metrics.audit_errors.inc()
            problems.append(f"audit: {error}")
        if problems:
            return jsonify(ready=False, problems=problems), 503
        return jsonify(ready=True), 200

    return app


def _decode_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        abort(
            400,
            f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}",
        )
    except UnicodeDecodeError:
        abort(400, "malformed JSON: the body is not UTF-8 text")
    except RecursionError:
        abort(400, "malformed JSON: nested too deeply")


def _events_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_EVENTS_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_EVENTS_LIMIT:
        abort(
            400, f"limit={raw!r}; expected a whole number from 1 to {MAX_EVENTS_LIMIT}"
        )
    return limit
