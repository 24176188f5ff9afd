"""/api/v1 RBAC routes: the permission catalogue, roles, role assignments with scope, LDAP groups.

Reading and changing roles, assignments and groups needs `admin.rbac` in the active
tenant; rbac itself enforces the safety rails (escalation, built-ins, roles in use,
the first admin, administrator groups).
"""
from __future__ import annotations

import contextlib
import re

from apiflask import APIBlueprint
from flask import current_app, request

from gateway.auth import actor, current_principal, is_super_admin, requires, session_cache
from gateway.etags import ETAG_HEADER, etag, if_match
from gateway.isolation import visible_user
from gateway.schemas import PageQuery
from gateway.schemas.rbac import (
    AssignmentIn,
    AssignmentOut,
    AssignmentPageOut,
    GroupIn,
    GroupOut,
    GroupPageOut,
    GroupPatchIn,
    MemberIn,
    MemberOut,
    MemberPageOut,
    MyPermissionsOut,
    NextGidOut,
    PermissionPageOut,
    RoleIn,
    RoleOut,
    RolePageOut,
    RolePatchIn,
)
from kernel.errors import ValidationFailed

bp = APIBlueprint("rbac", __name__, url_prefix="/api/v1", tag="RBAC")

ADMIN_RBAC = "admin.rbac"
NEEDS_RBAC = {401: "Not signed in", 403: "Missing permission admin.rbac"}
TENANT_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


@contextlib.contextmanager
def rbac_rpc():
    with current_app.extensions["rpc"].client() as rpc:
        yield rpc
    if request.method != "GET":  # a change: this process decides afresh at once, the others on the event
        session_cache().forget_decisions()


def _tenant() -> str:
    return current_principal().tenant_id


def _actor() -> dict:
    return actor().__dict__


def _listing(items: list) -> dict:
    return {"items": items, "next_cursor": None, "total": len(items)}


def _checked_tenant(tenant_id: str) -> str:
    if not TENANT_ID.match(tenant_id):
        raise ValidationFailed("Invalid tenant id.", details={"tenant_id": "1-36 letters, digits, '_' or '-'"})
    return tenant_id


def _visible(rpc, user_id: str) -> None:
    """404 for a user outside the active tenant; super admins manage assignments of every tenant
    (each names its tenant), so they reach every user here."""
    if not is_super_admin():
        visible_user(rpc, user_id)


def _username(rpc, user_id: str) -> str:
    """The user's name for events; also answers 404 for an unknown user or one of another tenant."""
    _visible(rpc, user_id)
    return rpc.identity.get_user(user_id)["username"]


# --- catalogue and the signed-in user -----------------------------------------------


@bp.get("/permissions")
@requires()
@bp.output(PermissionPageOut)
@bp.doc(summary="The permission catalogue", description="Every permission with category, description and "
        "whether it is dangerous. Any signed-in user.", responses={401: "Not signed in"})
def permissions():
    with rbac_rpc() as rpc:
        return _listing(rpc.rbac.list_permissions())


@bp.get("/me/permissions")
@requires()
@bp.output(MyPermissionsOut)
@bp.doc(summary="What the signed-in user may do in the active tenant",
        description="Role, effective permissions, scope and groups: what the UI shows.", responses={401: "Not signed in"})
def my_permissions():
    principal = current_principal()
    with rbac_rpc() as rpc:
        return rpc.rbac.effective_permissions(principal.user_id, principal.tenant_id)


# --- roles ---------------------------------------------------------------------------


@bp.get("/roles")
@requires(ADMIN_RBAC)
@bp.output(RolePageOut)
@bp.doc(summary="Roles of the active tenant", description="Built-in, global and the tenant's own custom roles. "
        "Needs `admin.rbac`.", responses=NEEDS_RBAC)
def list_roles():
    with rbac_rpc() as rpc:
        return _listing(rpc.rbac.list_roles(_tenant()))


@bp.post("/roles")
@requires(ADMIN_RBAC)
@bp.input(RoleIn, arg_name="body")
@bp.output(RoleOut, status_code=201, description="The new role", headers=ETAG_HEADER)
@bp.doc(summary="Create a custom role", description="In the active tenant, or `global` (super admins only). "
        "Needs `admin.rbac` and every permission the role holds. The `ETag` is its version, for `If-Match`.",
        responses={**NEEDS_RBAC, 403: "Missing admin.rbac, or a permission of the role (escalation)",
                   409: "Name taken", 422: "Invalid fields or unknown permissions"})
def create_role(body):
    with rbac_rpc() as rpc:
        role = rpc.rbac.create_role(_actor(), body["name"], body["permissions"], body["description"], _tenant(),
                                    body["is_global"])
    return role, 201, {"Location": f"/api/v1/roles/{role['id']}", **etag(role)}


@bp.get("/roles/<string:role_id>")
@requires(ADMIN_RBAC)
@bp.output(RoleOut, headers=ETAG_HEADER)
@bp.doc(summary="One role", description="Needs `admin.rbac`. The `ETag` is its version, for `If-Match` (a built-in "
        "role's is always \"1\": it never changes).", responses={**NEEDS_RBAC, 404: "No such role"})
def get_role(role_id):
    with rbac_rpc() as rpc:
        role = rpc.rbac.get_role(role_id, _tenant())
    return role, 200, etag(role)


@bp.patch("/roles/<string:role_id>")
@requires(ADMIN_RBAC)
@bp.input(RolePatchIn, arg_name="body")
@bp.output(RoleOut, headers=ETAG_HEADER)
@bp.doc(summary="Change a custom role's description or permissions",
        description="Needs `admin.rbac` and every permission the role holds before and after. Names are fixed; "
        "built-in roles cannot change. Send `If-Match: <ETag>` to refuse a change based on a stale read (412).",
        responses={**NEEDS_RBAC, 403: "Built-in role, global role (super admins only) or escalation",
                   404: "No such role", 412: "If-Match names an old version",
                   422: "Invalid fields or unknown permissions"})
def update_role(role_id, body):
    with rbac_rpc() as rpc:
        role = rpc.rbac.update_role(_actor(), role_id, _tenant(), body.get("description"), body.get("permissions"),
                                    if_match("role"))
    return role, 200, etag(role)


@bp.delete("/roles/<string:role_id>")
@requires(ADMIN_RBAC)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a custom role", description="Needs `admin.rbac`. Refused while anyone holds it.",
        responses={**NEEDS_RBAC, 403: "Built-in role or escalation", 404: "No such role",
                   409: "Assigned to users (`details.users` says how many)"})
def delete_role(role_id):
    with rbac_rpc() as rpc:
        rpc.rbac.delete_role(_actor(), role_id, _tenant())
    return "", 204


# --- assignments -----------------------------------------------------------------------


@bp.get("/users/<string:user_id>/roles")
@requires(ADMIN_RBAC)
@bp.output(AssignmentPageOut)
@bp.doc(summary="A user's role in each tenant, with scope", description=(
    "Needs `admin.rbac`. A user of the active tenant; only the active tenant's assignment unless you "
    "are a super admin (every tenant's)."), responses={**NEEDS_RBAC, 404: "No such user in the active tenant"})
def user_roles(user_id):
    with rbac_rpc() as rpc:
        _visible(rpc, user_id)
        assignments = rpc.rbac.user_roles(user_id)
    if not is_super_admin():
        assignments = [a for a in assignments if a["tenant_id"] == _tenant()]
    return _listing(assignments)


@bp.put("/users/<string:user_id>/roles/<string:tenant_id>")
@requires(ADMIN_RBAC)
@bp.input(AssignmentIn, arg_name="body")
@bp.output(AssignmentOut)
@bp.doc(summary="Give a user their role in a tenant, narrowed by a scope",
        description="Replaces the user's role in that tenant. Needs `admin.rbac` in that tenant and every "
        "permission of both the new and the replaced role; super_admin only from a super admin.",
        responses={**NEEDS_RBAC, 403: "Escalation, super_admin_only, first_admin_protected or outside_authority "
                   "(the user is beyond your authority: docs/security.md)",
                   404: "No such user", 422: "Unknown role or invalid scope"})
def assign_role(user_id, tenant_id, body):
    tenant_id = _checked_tenant(tenant_id)
    with rbac_rpc() as rpc:
        username = _username(rpc, user_id)
        return rpc.rbac.assign_role(_actor(), user_id, body["role"], tenant_id, username, body["scope"], ADMIN_RBAC)


@bp.delete("/users/<string:user_id>/roles/<string:tenant_id>")
@requires(ADMIN_RBAC)
@bp.output({}, status_code=204)
@bp.doc(summary="Take a user's role in a tenant away", description="Needs `admin.rbac` in that tenant and the "
        "role's permissions. The first administrator's role stays.",
        responses={**NEEDS_RBAC, 403: "Escalation, first_admin_protected or outside_authority",
                   404: "No such user or no role there"})
def unassign_role(user_id, tenant_id):
    tenant_id = _checked_tenant(tenant_id)
    with rbac_rpc() as rpc:
        rpc.rbac.unassign_role(_actor(), user_id, tenant_id, _username(rpc, user_id), ADMIN_RBAC)
    return "", 204


# --- groups and members -------------------------------------------------------------------


@bp.get("/groups")
@requires(ADMIN_RBAC)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(GroupPageOut)
@bp.doc(summary="LDAP groups of the active tenant, by GID", description="Needs `admin.rbac`. The active tenant's "
        "groups and the platform-wide ones (`platform`: the built-in `ldapusers` and `sysadmins`, and those a "
        "super admin made platform-wide); a platform-wide group's `member_count` counts the tenant's members "
        "only. Other tenants' groups are never listed.", responses=NEEDS_RBAC)
def list_groups(query):
    with rbac_rpc() as rpc:
        return rpc.rbac.list_groups(query["limit"], query.get("cursor"), tenant_id=_tenant())


@bp.post("/groups")
@requires(ADMIN_RBAC)
@bp.input(GroupIn, arg_name="body")
@bp.output(GroupOut, status_code=201, description="The new group")
@bp.doc(summary="Create an LDAP group", description="Needs `admin.rbac`. The group belongs to the active tenant; "
        "`platform: true` makes it platform-wide instead (super admins only). An administrator group needs a super "
        "admin. Without `gid_number` the lowest free GID of the configured range is used. cn and GID are unique "
        "across the whole directory (one LDAP tree holds every tenant's groups): a taken GID names its holder "
        "when the active tenant sees that group (its own or platform-wide), else answers 409 naming nothing "
        "about it. `GET /api/v1/groups/next-gid` suggests the GID.",
        responses={**NEEDS_RBAC, 403: "Platform-wide or administrator group by a non super admin (`super_admin_only`)",
                   409: "cn or GID taken in the directory, range full", 422: "Invalid cn, GID out of range",
                   429: "Too many group names or GIDs tried (GATEHOUSE_GROUP_NAMES_PER_ADMIN)"})
def create_group(body):
    with rbac_rpc() as rpc:
        group = rpc.rbac.create_group(_actor(), body["cn"], body.get("gid_number"), body["description"],
                                      body["is_admin"], tenant_id=_tenant(), platform=body["platform"])
    return group, 201, {"Location": f"/api/v1/groups/{group['id']}"}


@bp.get("/groups/next-gid")
@requires(ADMIN_RBAC)
@bp.output(NextGidOut)
@bp.doc(summary="The GID a new group would get", description="Needs `admin.rbac`. The lowest free GID of the "
        "configured range (`GATEHOUSE_GID_MIN`..`GATEHOUSE_GID_MAX`), skipping every tenant's groups as "
        "`POST /api/v1/groups` without `gid_number` does (docs/security.md: GIDs are unique across the "
        "directory); `null` when the range is full. A suggestion: another creation may take it first (409 "
        "`gid_taken`). (Group ids are UUIDs, so `next-gid` is never one.)", responses=NEEDS_RBAC)
def next_gid():
    with rbac_rpc() as rpc:
        return rpc.rbac.next_gid(_actor(), tenant_id=_tenant())


@bp.get("/groups/<uuid_id:group_id>")
@requires(ADMIN_RBAC)
@bp.output(GroupOut)
@bp.doc(summary="One LDAP group", description="Needs `admin.rbac`. A group of the active tenant or a platform-wide "
        "one; another tenant's answers 404 like an unknown id.", responses={**NEEDS_RBAC, 404: "No such group"})
def get_group(group_id):
    with rbac_rpc() as rpc:
        return rpc.rbac.get_group(group_id, tenant_id=_tenant())


@bp.patch("/groups/<uuid_id:group_id>")
@requires(ADMIN_RBAC)
@bp.input(GroupPatchIn, arg_name="body")
@bp.output(GroupOut)
@bp.doc(summary="Change an LDAP group", description="Needs `admin.rbac`; administrator and platform-wide groups "
        "need a super admin. Built-in groups only change their description.",
        responses={**NEEDS_RBAC, 403: "Built-in (`builtin_group_protected`), platform-wide (`platform_group_protected`) "
                   "or administrator group", 404: "No such group in the active tenant",
                   409: "cn or GID taken in the directory", 422: "Invalid cn, GID out of range",
                   429: "Too many group names or GIDs tried (a change of cn or GID counts)"})
def update_group(group_id, body):
    with rbac_rpc() as rpc:
        return rpc.rbac.update_group(_actor(), group_id, body, tenant_id=_tenant())


@bp.delete("/groups/<uuid_id:group_id>")
@requires(ADMIN_RBAC)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete an LDAP group", description="Needs `admin.rbac`; built-in groups stay; platform-wide and "
        "administrator groups need a super admin.",
        responses={**NEEDS_RBAC, 403: "Built-in, platform-wide or administrator group",
                   404: "No such group in the active tenant"})
def delete_group(group_id):
    with rbac_rpc() as rpc:
        rpc.rbac.delete_group(_actor(), group_id, tenant_id=_tenant())
    return "", 204


@bp.get("/groups/<uuid_id:group_id>/members")
@requires(ADMIN_RBAC)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(MemberPageOut)
@bp.doc(summary="Members of an LDAP group", description="Needs `admin.rbac`. Of a platform-wide group, the members "
        "of the active tenant only.", responses={**NEEDS_RBAC, 404: "No such group in the active tenant"})
def list_members(group_id, query):
    with rbac_rpc() as rpc:
        return rpc.rbac.list_members(group_id, query["limit"], query.get("cursor"), tenant_id=_tenant())


@bp.post("/groups/<uuid_id:group_id>/members")
@requires(ADMIN_RBAC)
@bp.input(MemberIn, arg_name="body")
@bp.output(MemberOut, status_code=201, description="Added (200 when already a member)")
@bp.doc(summary="Add a user to an LDAP group", description="Needs `admin.rbac`; administrator and platform-wide groups "
        "need a super admin. The user must be a member of the active tenant (anyone else answers 404 like an "
        "unknown user) within the caller's authority. Applies to the user's next request and authentication.",
        responses={**NEEDS_RBAC, 200: "Already a member",
                   403: "Administrator or platform-wide group, or `outside_authority`",
                   404: "No such group or user in the active tenant"})
def add_member(group_id, body):
    with rbac_rpc() as rpc:
        username = _username(rpc, body["user_id"])
        member, added = rpc.rbac.add_member(_actor(), group_id, body["user_id"], username, tenant_id=_tenant())
    location = {"Location": f"/api/v1/groups/{group_id}/members/{body['user_id']}"}
    return member, 201 if added else 200, location


@bp.get("/groups/<uuid_id:group_id>/members/<string:user_id>")
@requires(ADMIN_RBAC)
@bp.output(MemberOut)
@bp.doc(summary="One member of an LDAP group", description="Needs `admin.rbac`. Where adding a member points "
        "(`Location`).", responses={**NEEDS_RBAC, 404: "No such group or not a member"})
def get_member(group_id, user_id):
    with rbac_rpc() as rpc:
        return rpc.rbac.get_member(group_id, user_id, tenant_id=_tenant())


@bp.delete("/groups/<uuid_id:group_id>/members/<string:user_id>")
@requires(ADMIN_RBAC)
@bp.output({}, status_code=204)
@bp.doc(summary="Remove a user from an LDAP group", description="Needs `admin.rbac`; administrator and platform-wide "
        "groups need a super admin.",
        responses={**NEEDS_RBAC, 403: "Administrator or platform-wide group, or `outside_authority`",
                   404: "No such group or not a member"})
def remove_member(group_id, user_id):
    with rbac_rpc() as rpc:
        rpc.rbac.remove_member(_actor(), group_id, user_id, tenant_id=_tenant())
    return "", 204


@bp.get("/users/<string:user_id>/groups")
@requires(ADMIN_RBAC)
@bp.output(GroupPageOut)
@bp.doc(summary="The LDAP groups of a user", description="Needs `admin.rbac`. Those seen from the active tenant "
        "(its groups and the platform-wide ones).", responses=NEEDS_RBAC)
def user_groups(user_id):
    with rbac_rpc() as rpc:
        _visible(rpc, user_id)
        return _listing(rpc.rbac.user_groups(user_id, tenant_id=_tenant()))
