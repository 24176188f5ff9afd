"""/api/v1/audit: reading the audit trail (list, export) and forwarding it to a SIEM.

Scoping is decided here, from the session, and handed to the audit service explicitly:
super admins read every tenant (and may filter by `tenant`); anyone else with
`admin.audit` reads the records of the session's tenant only, whatever they ask.
"""
from __future__ import annotations

from datetime import datetime, timezone

from apiflask import APIBlueprint, FileSchema
from flask import Response, current_app, request, stream_with_context

from gateway.audit_export import MEDIA_TYPES, WRITERS
from gateway.auth import actor, current_principal, forbid, is_super_admin, requires
from gateway.schemas.audit import AuditExportQuery, AuditPageOut, AuditQuery, ForwardingIn, ForwardingOut
from kernel import EVERY_TENANT, SUPER_ADMIN_ONLY
from kernel.errors import ValidationFailed

bp = APIBlueprint("audit", __name__, url_prefix="/api/v1", tag="Audit")

EXPORT_PAGE = 1000
NEEDS = {401: "Not signed in", 403: "Missing permission admin.audit, or `tenant` given by a non super admin",
         422: "Invalid or unknown filter, or a foreign cursor (details name it)"}
FILTERS_DOC = (
    "Filters (all optional, combined with AND): `since`/`until` (ISO-8601, on `recorded_at`: at or after / "
    "before), `category`, `action`, `actor_id`, `actor` (username), `resource_type`, `resource_id`, "
    "`outcome`, `q` (case-insensitive substring of the actor's username, name or email, the resource name or "
    "the action), `tenant` (super admins only). Super admins see every tenant's records and those of no "
    "tenant; everyone else only records of the session's tenant (events about a user show in each tenant "
    "of that user).")


def _scope(filters: dict) -> str:
    """Whose records the caller may read: every tenant (super admins), else the session's tenant."""
    if is_super_admin():
        return EVERY_TENANT
    if filters.get("tenant") is not None:
        forbid(SUPER_ADMIN_ONLY, "Only super admins may filter the audit trail by tenant.",
               {"tenant": "only super admins may filter by tenant"})
    return current_principal().tenant_id


def _refuse_unknown(schema) -> None:
    """A mistyped filter must not silently widen an audit search (query strings ignore unknown names)."""
    if unknown := sorted(set(request.args) - set(schema().fields)):
        raise ValidationFailed("The request has invalid fields.",
                               details={"query": {name: ["Unknown field."] for name in unknown}})


def _filters(query: dict) -> dict:
    """The query's filters as the audit RPC takes them (times as ISO-8601 text)."""
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in query.items()}


def _page(scope: str, filters: dict, limit: int, cursor: str | None) -> dict:
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.audit.list_events(scope, filters, limit, cursor)


@bp.get("/audit/events")
@requires("admin.audit")
@bp.input(AuditQuery, location="query", arg_name="query")
@bp.output(AuditPageOut)
@bp.doc(summary="The audit trail, newest first", description=(
    f"Needs `admin.audit`. {FILTERS_DOC} Page with `limit` (1-200, default 50) and `cursor` = the previous "
    "`next_cursor`: pages stay consistent while new records arrive. No `total`: counting a million records "
    "would cost more than the page."), responses=NEEDS)
def events(query):
    _refuse_unknown(AuditQuery)
    limit, cursor = query.pop("limit"), query.pop("cursor", None)
    return _page(_scope(query), _filters(query), limit, cursor)


@bp.get("/audit/export")
@requires("admin.audit")
@bp.input(AuditExportQuery, location="query", arg_name="query")
@bp.output(FileSchema(type="string", format="binary"), content_type="text/csv",
           description="`format=csv`: a header row, then one row per record (see `format=jsonl` for the lossless form)")
@bp.doc(summary="Export the audit trail (CSV or JSON lines)", description=(
    f"Needs `admin.audit`. {FILTERS_DOC} Every matching record, newest first, streamed as it is read "
    "(no size limit). CSV: columns seq, id, recorded_at, occurred_at, type, source, category, action, outcome, "
    "actor_user_id, actor_username, actor_display_name, actor_email, actor_ip, request_id, tenant_ids "
    "(space-separated), resource_type, resource_id, resource_name, data (JSON); a text cell starting with "
    "= + - @ is prefixed with ' so spreadsheets do not run it. JSONL: one record per line as the list shows "
    "it. A failure mid-way cuts the download short (the chunked transfer does not end properly)."),
    responses={**NEEDS, 200: {"description": "The records", "content": {
        "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}}},
        "headers": {"Content-Disposition": {"schema": {"type": "string"},
                                            "description": 'attachment; filename="audit-<time>.<format>"'}}}})
def export(query):
    _refuse_unknown(AuditExportQuery)
    kind = query.pop("format")
    filename = f"audit-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.{kind}"
    scope, filters = _scope(query), _filters(query)
    first = _page(scope, filters, EXPORT_PAGE, None)  # bad filters answer 422 before any byte is sent

    def pages():
        page = first
        yield page["items"]
        while page["next_cursor"]:
            page = _page(scope, filters, EXPORT_PAGE, page["next_cursor"])
            yield page["items"]

    return Response(stream_with_context(WRITERS[kind](pages())), content_type=MEDIA_TYPES[kind],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


FORWARDING_DOC = (
    "Super admins only: the trail of every tenant goes to one collector. Syslog RFC 5424 over UDP or TCP "
    "(octet-counting framing, RFC 6587), one message per record: structured data `[gatehouse@32473 seq "
    "event_id type outcome actor actor_id tenant]`, MSG = the record as JSON. Switching it on starts after the "
    "newest record; from then on nothing is skipped across collector outages over TCP (records are resent "
    "until a live connection took them; some may arrive twice). UDP cannot tell a lost message: use TCP when "
    "every record counts.")


@bp.get("/settings/audit-forwarding")
@requires(SUPER_ADMIN_ONLY)
@bp.output(ForwardingOut)
@bp.doc(summary="Audit forwarding to a SIEM (syslog)", description=FORWARDING_DOC, tags=["Settings"],
        responses={401: "Not signed in", 403: "Not a super admin"})
def get_forwarding():
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.audit.get_forwarding(actor().__dict__)


@bp.put("/settings/audit-forwarding")
@requires(SUPER_ADMIN_ONLY)
@bp.input(ForwardingIn, arg_name="body")
@bp.output(ForwardingOut)
@bp.doc(summary="Configure audit forwarding to a SIEM (syslog)",
        description=f"{FORWARDING_DOC} A change is audited as `audit.forwarding_changed`.", tags=["Settings"],
        responses={401: "Not signed in", 403: "Not a super admin", 422: "Invalid fields"})
def put_forwarding(body):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.audit.put_forwarding(actor().__dict__, body)
