"""Bodies of /api/v1/me/tenants, /api/v1/me/tenant and the cross-tenant user view."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Length

from gateway.schemas import JsonBoolean, UserOut


class MyTenantOut(Schema):
    tenant_id = String()
    tenant_name = String()
    is_default = JsonBoolean(metadata={"description": "where the user's sessions start"})
    active = JsonBoolean(metadata={"description": "this session's active tenant"})


class MyTenantsOut(Schema):
    items = List(Nested(MyTenantOut))
    next_cursor = String(allow_none=True)
    total = Integer()
    active_tenant_id = String(metadata={"description": "this session's active tenant"})


class SwitchTenantIn(Schema):
    tenant_id = String(required=True, validate=Length(1, 36))


class ActiveTenantOut(Schema):
    tenant_id = String(metadata={"description": "this session's active tenant from now on"})
    tenant_name = String()


class TenantAssignmentOut(Schema):
    tenant_id = String()
    role = String(allow_none=True, metadata={"description": "the user's role in that tenant"})
    is_default = JsonBoolean()


class CrossTenantUserOut(UserOut):
    """A user as the cross-tenant view shows them (super admins)."""

    tenants = List(Nested(TenantAssignmentOut), metadata={"description": "every tenant of the user, role in each"})
    invitation_status = String(allow_none=True, metadata={
        "description": "state of the invitation that made the user (pending, accepted, revoked, expired), if any"})


class UserPageAnyTenantOut(Schema):
    items = List(Nested(CrossTenantUserOut))
    next_cursor = String(allow_none=True)
    total = Integer()
