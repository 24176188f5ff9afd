"""Bodies of the RBAC routes: permissions, roles, assignments with scope, groups and members."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Integer, List, Nested, String
from apiflask.validators import Length

from gateway.schemas import page_of


class PermissionOut(Schema):
    name = String()
    category = String()
    description = String()
    dangerous = Boolean()


def _ids():
    return List(String(validate=Length(1, 128)), validate=Length(max=500), load_default=list)


class Scope(Schema):
    """Empty lists mean everything in the tenant; ids are matched exactly."""

    connections = _ids()
    nodes = _ids()
    storages = _ids()
    vms = _ids()


class GroupRef(Schema):
    cn = String()
    is_admin = Boolean()


class MyPermissionsOut(Schema):
    tenant_id = String()
    role = String(allow_none=True)
    super_admin = Boolean()
    permissions = List(String())
    scope = Nested(Scope)
    groups = List(Nested(GroupRef))


class RoleIn(Schema):
    name = String(required=True, validate=Length(2, 64))
    description = String(load_default="", validate=Length(0, 256))
    permissions = List(String(validate=Length(1, 64)), required=True, validate=Length(1, 100))
    is_global = Boolean(load_default=False, data_key="global",
                        metadata={"description": "a role of every tenant (super admins only); else of the active tenant"})


class RolePatchIn(Schema):
    description = String(validate=Length(0, 256))
    permissions = List(String(validate=Length(1, 64)), validate=Length(1, 100))


class RoleOut(Schema):
    id = String(metadata={"description": "a built-in role's id is its name"})
    name = String()
    description = String()
    permissions = List(String())
    builtin = Boolean()
    is_global = Boolean(data_key="global", metadata={"description": "held in any tenant (built-in or global custom)"})
    tenant_id = String(allow_none=True, metadata={"description": "null for built-in and global roles"})
    user_count = Integer(metadata={"description": "users holding it in the active tenant"})
    created_at = String(allow_none=True, metadata={"format": "date-time"})
    updated_at = String(allow_none=True, metadata={"format": "date-time"})
    version = Integer(metadata={"description": "bumped on every change; the ETag of If-Match edits (built-in: 1)"})


class RoleItemOut(RoleOut):
    """A role in a list (own classes for nested and top-level answers: apispec names a class
    it met nested first twice, RoleOut and RoleOut1)."""


class AssignmentIn(Schema):
    role = String(required=True, validate=Length(1, 64))
    scope = Nested(Scope, load_default=dict)


class AssignmentOut(Schema):
    user_id = String()
    tenant_id = String()
    role = String()
    scope = Nested(Scope)
    locked = Boolean(metadata={"description": "the first administrator's role: cannot change"})
    assigned_at = String(metadata={"format": "date-time"})


class AssignmentItemOut(AssignmentOut):
    """An assignment in a list."""


class GroupIn(Schema):
    cn = String(required=True, validate=Length(1, 32))
    gid_number = Integer(strict=True, metadata={"description": "allocated from the configured range when omitted"})
    description = String(load_default="", validate=Length(0, 256))
    is_admin = Boolean(load_default=False)


class GroupPatchIn(Schema):
    cn = String(validate=Length(1, 32))
    gid_number = Integer(strict=True)
    description = String(validate=Length(0, 256))
    is_admin = Boolean()


class GroupOut(Schema):
    id = String()
    cn = String()
    gid_number = Integer()
    description = String()
    is_admin = Boolean()
    builtin = Boolean()
    member_count = Integer()
    created_at = String(metadata={"format": "date-time"})


class GroupItemOut(GroupOut):
    """A group in a list."""


class MemberIn(Schema):
    user_id = String(required=True, validate=Length(1, 36))


class MemberOut(Schema):
    user_id = String()
    username = String(allow_none=True)
    added_at = String(metadata={"format": "date-time"})


class MemberItemOut(MemberOut):
    """A member in a list."""


PermissionPageOut = page_of(PermissionOut, "PermissionPage")
RolePageOut = page_of(RoleItemOut, "RolePage")
AssignmentPageOut = page_of(AssignmentItemOut, "AssignmentPage")
GroupPageOut = page_of(GroupItemOut, "GroupPage")
MemberPageOut = page_of(MemberItemOut, "MemberPage")
