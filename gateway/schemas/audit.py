"""Bodies and queries of /api/v1/audit and /api/v1/settings/audit-forwarding."""
from __future__ import annotations

from datetime import timezone

from apiflask import Schema
from apiflask.fields import AwareDateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from gateway.schemas import JsonBoolean, WholeBodyRule
from kernel.envelope import CATEGORIES, OUTCOMES
from contracts import audit as forwarder


class AuditFilters(Schema):
    """The filters of the list and the export; every one narrows (AND)."""

    since = AwareDateTime(default_timezone=timezone.utc, metadata={
        "description": "recorded at or after this time (ISO-8601; without an offset: UTC)"})
    until = AwareDateTime(default_timezone=timezone.utc, metadata={"description": "recorded before this time"})
    category = String(validate=OneOf(sorted(CATEGORIES)))
    action = String(validate=Length(1, 128), metadata={"description": "e.g. login_failed"})
    actor_id = String(validate=Length(1, 36), metadata={"description": "the acting user's id"})
    actor = String(validate=Length(1, 128), metadata={"description": "the acting user's username, as it was then"})
    resource_type = String(validate=Length(1, 64))
    resource_id = String(validate=Length(1, 64))
    outcome = String(validate=OneOf(sorted(OUTCOMES)))
    tenant = String(validate=Length(1, 36), metadata={
        "description": "super admins only: records of this tenant (others see their tenant's only; 403)"})
    q = String(validate=Length(1, 128), metadata={
        "description": "case-insensitive substring of the actor's username, name or email, the resource name "
                       "or the action"})


class AuditQuery(AuditFilters):
    limit = Integer(load_default=50, validate=Range(1, 200))
    cursor = String(validate=Length(1, 200), metadata={"description": "`next_cursor` of the previous page"})


class AuditExportQuery(AuditFilters):
    format = String(required=True, validate=OneOf(["csv", "jsonl"]),
                    metadata={"description": "csv (a header row, one flat row per record) or jsonl "
                                             "(one JSON record per line, as the list shows them)"})


class AuditActor(Schema):
    user_id = String(allow_none=True)
    username = String(allow_none=True)
    display_name = String(allow_none=True, metadata={"description": "as it was when the event happened"})
    email = String(allow_none=True, metadata={"description": "as it was when the event happened"})
    ip = String(allow_none=True)


class AuditResource(Schema):
    type = String()
    id = String(allow_none=True)
    name = String(allow_none=True)


class AuditEventOut(Schema):
    id = String(metadata={"description": "the event id"})
    seq = Integer(metadata={"description": "position in the trail (hash chain)"})
    type = String()
    source = String()
    category = String()
    action = String()
    outcome = String()
    occurred_at = String(metadata={"format": "date-time", "description": "when it happened (the sender's clock)"})
    recorded_at = String(metadata={"format": "date-time", "description": "when audit stored it (`since`/`until`)"})
    actor = Nested(AuditActor)
    request_id = String(allow_none=True)
    tenant_ids = List(String(), metadata={"description": "the tenants whose audit view shows it"})
    resource = Nested(AuditResource)
    data = Dict()


class AuditPageOut(Schema):
    items = List(Nested(AuditEventOut))
    next_cursor = String(allow_none=True, metadata={"description": "null on the last page"})


class ForwardingIn(WholeBodyRule):
    """host, port and protocol are required when enabled."""

    problems_of = staticmethod(forwarder.config_problems)

    enabled = JsonBoolean(required=True)
    host = String(validate=Length(1, 253), allow_none=True, metadata={"description": "required when enabled"})
    port = Integer(validate=Range(1, 65535), allow_none=True, metadata={"description": "required when enabled"})
    protocol = String(validate=OneOf(["udp", "tcp"]), allow_none=True,
                      metadata={"description": "required when enabled; tcp uses octet-counting framing (RFC 6587)"})
    app_name = String(validate=Length(1, 48), allow_none=True, metadata={"description": "APP-NAME, default gatehouse"})


class ForwardingOut(Schema):
    enabled = JsonBoolean()
    host = String(allow_none=True)
    port = Integer(allow_none=True)
    protocol = String(allow_none=True)
    app_name = String()
    updated_at = String(allow_none=True, metadata={"format": "date-time"})
    updated_by = String(allow_none=True)
    last_forwarded_seq = Integer(allow_none=True, metadata={"description": "the last record the collector took"})
    pending = Integer(metadata={"description": "records waiting to be forwarded"})
    last_error = String(allow_none=True, metadata={"description": "why the last attempt failed; null once one works"})
