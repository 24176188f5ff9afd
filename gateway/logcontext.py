"""The gateway's side of the log context (kernel/logs.py): each request's lines carry its
request id, and every RPC it makes sends the request id, user and tenant along (nameko
context data), so the services' lines about the request carry them too."""
from __future__ import annotations

from flask import Flask, g, has_request_context

from gateway.metrics import UNMATCHED, route_of
from kernel import logs


def call_context() -> dict:
    """What an RPC made now sends along: the request's id, and its user and tenant once signed in."""
    if not has_request_context():
        return {}
    principal = g.get("principal")
    return {"request_id": g.get("request_id"), "user_id": principal.user_id if principal else None,
            "tenant_id": principal.tenant_id if principal else None}


def request_fields(request) -> dict:
    """The request line's fields besides the request id: user, tenant, and the route's template
    (e.g. /api/v1/users/<string:user_id>), which groups requests and never holds a token."""
    principal = g.get("principal")
    return {"user_id": principal.user_id if principal else None,
            "tenant_id": principal.tenant_id if principal else None,
            "route": None if (route := route_of(request)) == UNMATCHED else route}


def install(app: Flask) -> None:
    """Binds each request's id for its log lines (register after the hook that sets g.request_id)."""

    @app.before_request
    def _bind():
        g.log_token = logs.bind(request_id=g.get("request_id"))

    @app.teardown_request
    def _unbind(_error):
        if (token := g.pop("log_token", None)) is not None:
            logs.unbind(token)
