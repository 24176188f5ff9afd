"""The gateway's app factory."""
from __future__ import annotations

import logging
import re
import time
import uuid

from apiflask import APIFlask
from flask import g, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import console, errors, headers, json_guard, logcontext, metrics, openapi
from gateway.rpc import RpcPool
from gateway.routes import (
    audit, audit_chain, auth, connections, health, inventory, invitations, me, my_tenant, passwords, rbac, sessions,
    settings, sync, tenancy, twofactor, users,
)
from gateway.session_cache import ProcessSessionCache
from kernel.config import Config

log = logging.getLogger("gatehouse.gateway")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_BODY = 256 * 1024
# An oversize body up to this size is read and dropped so the client sees the 413
# answer instead of a connection reset; beyond it the connection is just closed.
DRAINED_BODY = 8 * 1024 * 1024


def create_app(config: Config | None = None) -> APIFlask:
    config = config or Config.from_env()
    app = APIFlask("gatehouse", title="Gatehouse API", version="1",
                   spec_path="/api/v1/openapi.json", docs_path=None)  # /api/docs: gateway.console
    app.config.update(
        JWT_SECRET=config.jwt_secret,
        ACCESS_TOKEN_TTL=config.integer("GATEHOUSE_ACCESS_TOKEN_TTL"),
        AMQP_URI=config.amqp_uri,
        MAX_CONTENT_LENGTH=MAX_BODY,
        JSON_SORT_KEYS=False,
        # The console's refresh-token cookie is Secure when people reach the gateway over https.
        REFRESH_COOKIE_MAX_AGE=config.integer("GATEHOUSE_REFRESH_TOKEN_TTL"),
        CONSOLE_COOKIE_SECURE=config["GATEHOUSE_PUBLIC_URL"].lower().startswith("https://"),
        HTTP_ERROR_SCHEMA=openapi.ErrorOut,
        VALIDATION_ERROR_SCHEMA=openapi.ErrorOut,
    )
    # `//` (or `%2F` in an id) must not be a 308 HTML redirect to another resource: no rule
    # ends in a slash but `/`, so without merging an odd path is a plain JSON 404.
    app.url_map.merge_slashes = False
    app.url_map.converters["uuid_id"] = openapi.UuidConverter
    trusted = config.integer("GATEHOUSE_TRUSTED_PROXIES")
    if trusted:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted)

    timeout = config.number("GATEHOUSE_RPC_TIMEOUT")
    context = logcontext.call_context  # each RPC carries the request's id, user and tenant to the services' logs
    app.extensions["rpc"] = RpcPool(config.nameko(), config.integer("GATEHOUSE_RPC_POOL_SIZE"), timeout, context)
    app.extensions["health_rpc"] = RpcPool(config.nameko(), 2, min(timeout, 2.0), context)
    # Calls that read a whole store (audit verify) may take minutes.
    app.extensions["long_rpc"] = RpcPool(config.nameko(), 2, config.number("GATEHOUSE_AUDIT_VERIFY_TIMEOUT"), context)
    app.extensions["session_cache"] = ProcessSessionCache(config.amqp_uri)

    errors.register(app)
    openapi.install(app, {"action": {"type": "string", "enum": sorted(inventory.ACTIONS)}})
    for module in (health, auth, me, users, sessions, audit, audit_chain, invitations, passwords, settings, rbac,
                   twofactor, tenancy, connections, my_tenant, sync, inventory):
        app.register_blueprint(module.bp)
    app.register_blueprint(console.bp)  # `/`, every non-API path, /assets/, /api/docs
    metrics.install(app, config)  # before _start: the in-flight gauge's before_request runs first

    @app.before_request
    def _start():
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        length = request.content_length or 0
        if MAX_BODY < length <= DRAINED_BODY:
            stream = request.environ["wsgi.input"]
            while length > 0 and (chunk := stream.read(min(length, 65536))):
                length -= len(chunk)
            raise RequestEntityTooLarge(f"The request body is larger than {MAX_BODY // 1024} KiB.")

    @app.after_request
    def _finish(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        log.info("request", extra={
            "request_id": g.get("request_id"), "method": request.method,
            "path": g.get("log_path", request.path),  # a route may hide a token in its path
            "status": response.status_code, **logcontext.request_fields(request),
            "latency_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2),
        })
        return response

    logcontext.install(app)  # after _start, which sets the request id
    json_guard.install(app)  # after _start: an oversize body is refused before it is read
    headers.install(app, config)  # after _start: a preflight answer carries the request id too
    return app
