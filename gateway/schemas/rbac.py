"""Bodies of the RBAC routes: permissions, roles, assignments with scope, groups and members."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from contracts import rbac as domain
from contracts.identity import FIRST_UID_NUMBER
from gateway.schemas import JsonBoolean, Rule, page_of, pattern_of, role_reference


class PermissionOut(Schema):
    name = String()
    category = String()
    description = String()
    dangerous = JsonBoolean()


def _ids():
    return List(String(validate=Length(1, domain.SCOPE_ID_MAX)), validate=Length(max=domain.SCOPE_IDS_MAX),
                load_default=list)


# Empty lists mean everything in the tenant; ids are matched exactly.
Scope = Schema.from_dict({key: _ids() for key in domain.SCOPE_KEYS}, name="Scope")


def _permissions(**kwargs) -> List:
    known = OneOf(sorted(domain.PERMISSIONS), error="unknown permission: {input}")
    return List(String(validate=known), validate=Length(1, 100, error="a role needs at least one permission "
                                                        "(at most {max})"), **kwargs)


def _description(**kwargs) -> String:
    return String(validate=Length(0, domain.DESCRIPTION_MAX), **kwargs)


def _group_cn(**kwargs) -> String:
    return String(validate=Rule(lambda cn: domain.group_problems(cn, None).get("cn")),
                  metadata=pattern_of(domain.GROUP_CN), **kwargs)


def _gid_number() -> Integer:
    # The configured range (GATEHOUSE_GID_MIN/MAX) is rbac's check; it never reaches uidNumbers.
    return Integer(strict=True, validate=Range(1, FIRST_UID_NUMBER - 1),
                   metadata={"description": "allocated from the configured range when omitted"})


class GroupRef(Schema):
    cn = String()
    is_admin = JsonBoolean()


class MyPermissionsOut(Schema):
    tenant_id = String()
    role = String(allow_none=True)
    super_admin = JsonBoolean()
    permissions = List(String())
    scope = Nested(Scope)
    groups = List(Nested(GroupRef))


class RoleIn(Schema):
    name = String(required=True, validate=Rule(domain.role_name_problem), metadata={
        **pattern_of(domain.ROLE_NAME), "description": "not a built-in role's; fixed once created"})
    description = _description(load_default="")
    permissions = _permissions(required=True)
    is_global = JsonBoolean(load_default=False, data_key="global",
                            metadata={"description": "a role of every tenant (super admins only); else of the active tenant"})


class RolePatchIn(Schema):
    description = _description()
    permissions = _permissions()


class RoleOut(Schema):
    id = String(metadata={"description": "a built-in role's id is its name"})
    name = String()
    description = String()
    permissions = List(String())
    builtin = JsonBoolean()
    is_global = JsonBoolean(data_key="global", metadata={"description": "held in any tenant (built-in or global custom)"})
    tenant_id = String(allow_none=True, metadata={"description": "null for built-in and global roles"})
    user_count = Integer(metadata={"description": "users holding it in the active tenant"})
    created_at = String(allow_none=True, metadata={"format": "date-time"})
    updated_at = String(allow_none=True, metadata={"format": "date-time"})
    version = Integer(metadata={"description": "bumped on every change; the ETag of If-Match edits (built-in: 1)"})


class RoleItemOut(RoleOut):
    """A role in a list (own classes for nested and top-level answers: apispec names a class
    it met nested first twice, RoleOut and RoleOut1)."""


class AssignmentIn(Schema):
    role = role_reference(required=True)
    scope = Nested(Scope, load_default=dict)


class AssignmentOut(Schema):
    user_id = String()
    tenant_id = String()
    role = String()
    scope = Nested(Scope)
    locked = JsonBoolean(metadata={"description": "the first administrator's role: cannot change"})
    assigned_at = String(metadata={"format": "date-time"})


class AssignmentItemOut(AssignmentOut):
    """An assignment in a list."""


class GroupIn(Schema):
    cn = _group_cn(required=True)
    gid_number = _gid_number()
    description = _description(load_default="")
    is_admin = JsonBoolean(load_default=False)
    platform = JsonBoolean(load_default=False, metadata={
            "description": "platform-wide instead of the active tenant's (super admins only)"})


class GroupPatchIn(Schema):
    cn = _group_cn()
    gid_number = _gid_number()
    description = _description()
    is_admin = JsonBoolean()


class GroupOut(Schema):
    id = String()
    cn = String()
    gid_number = Integer()
    description = String()
    is_admin = JsonBoolean()
    builtin = JsonBoolean()
    tenant_id = String(allow_none=True, metadata={"description": "the tenant the group belongs to; null: platform-wide"})
    platform = JsonBoolean(metadata={"description": "platform-wide: seen by every tenant, changed by super admins only"})
    member_count = Integer(metadata={"description": "of a platform-wide group: the active tenant's members"})
    created_at = String(metadata={"format": "date-time"})


class NextGidOut(Schema):
    gid_number = Integer(allow_none=True, metadata={"description": "the lowest free GID of the range (null: the "
                                                    "range is full); what a creation without `gid_number` would get"})
    gid_min = Integer(metadata={"description": "the configured range's lowest GID"})
    gid_max = Integer(metadata={"description": "the configured range's highest GID"})


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
