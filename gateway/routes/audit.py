"""/api/v1/audit: the audit trail."""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import requires
from gateway.schemas import AuditPageOut, AuditQuery

bp = APIBlueprint("audit", __name__, url_prefix="/api/v1/audit", tag="Audit")


@bp.get("/events")
@requires("admin.audit")
@bp.input(AuditQuery, location="query", arg_name="query")
@bp.output(AuditPageOut)
@bp.doc(summary="What happened, newest first", description="Needs `admin.audit`. Page with `cursor` = `next_cursor`.",
        responses={401: "Not signed in", 403: "Missing permission admin.audit"})
def events(query):
    limit, cursor = query.pop("limit"), query.pop("cursor", None)
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.audit.list_events(query, limit, cursor)
