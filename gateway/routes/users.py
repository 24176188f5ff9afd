"""/api/v1/users: user administration, confined to the session's active tenant.

A user who is not a member of the active tenant is 404 here; a change to a user of other
tenants too needs admin.users in all of them (gateway/isolation.py). identity itself refuses any
change beyond the caller's authority (docs/security.md): never a super admin unless one, never an
account holding rights the caller lacks in one of its tenants. Super admins list across
tenants with `?tenant=*` or `?tenant=<id>`.

Identity owns accounts, rbac owns roles and groups: a create or change with `role`/`groups` is ONE
RPC to identity, which owns the whole write (it asks rbac first, commits, then has rbac apply its
part, and undoes its own change when rbac refuses then: docs/architecture.md, "Writes that span
services").
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, is_super_admin, requires, session_cache
from gateway.etags import ETAG_HEADER, etag, if_match
from gateway.isolation import changeable_user, visible_user
from gateway.schemas.isolation import UserPageAnyTenantOut
from gateway.schemas.users import CreatedUserOut, UserCreateIn, UserDetailOut, UserListQuery, UserPatchIn
from kernel import SUPER_ADMIN_ONLY
from kernel.errors import Forbidden, NotFound

bp = APIBlueprint("users", __name__, url_prefix="/api/v1/users", tag="Users")

NEEDS = {401: "Not signed in", 403: "Missing permission admin.users"}
CHANGE = {401: "Not signed in", 403: "Missing permission admin.users; `cross_tenant_user`: the user also "
          "belongs to tenants you do not administer; `outside_authority`: the user is a super admin or holds "
          "rights you lack (docs/security.md)", 404: "No such user in the active tenant"}
ALL_TENANTS = "*"


@bp.get("/<string:user_id>")
@requires("admin.users")
@bp.output(UserDetailOut, headers=ETAG_HEADER)
@bp.doc(summary="One user", description="Needs `admin.users`. The `ETag` is the user's version, for `If-Match`.",
        responses={**NEEDS, 404: "No such user in the active tenant"})
def get_user(user_id):
    tenant_id = current_principal().tenant_id
    with current_app.extensions["rpc"].client() as rpc:
        visible_user(rpc, user_id)
        user = _describe(rpc, rpc.identity.get_user(user_id, tenant_id), tenant_id)
    return user, 200, _etag(user)


@bp.get("")
@requires("admin.users")
@bp.input(UserListQuery, location="query", arg_name="query")
@bp.output(UserPageAnyTenantOut)
@bp.doc(summary="List users", description=(
    "Needs `admin.users`. The members of the active tenant, with their role there. `q` searches name, "
    "username and email; filters `status`, `role` (in the caller's tenant); `sort` by name, username, email, "
    "role, status, totp_enrolled, last_login_at or created_at, `order` asc|desc; page with `cursor` = "
    "`next_cursor` (of the same sort and order); `total` counts matches exactly up to 1,000 (`total_exact`). "
    "Cross-tenant view (super admins only): `tenant=*` lists every "
    "user, `tenant=<id>` that tenant's users, each with `tenants` (every tenant of the user and the role in "
    "each) and `invitation_status`."),
    responses={**NEEDS, 403: "Missing admin.users, or `tenant` from someone not a super admin",
               404: "`tenant` names no tenant", 422: "Invalid query parameter"})
def list_users(query):
    wanted = query.pop("tenant", None)
    with current_app.extensions["rpc"].client() as rpc:
        if wanted is None:
            return rpc.identity.list_users(tenant_id=current_principal().tenant_id, **query)
        if not is_super_admin():
            raise Forbidden("Only super admins list users across tenants (the `tenant` parameter).",
                            code="permission_denied", details={"tenant": "only for super admins",
                                                               "permission": SUPER_ADMIN_ONLY})
        if wanted != ALL_TENANTS and not rpc.tenancy.tenant_exists(wanted):
            raise NotFound("No such tenant.", code="tenant_not_found", details={"tenant": wanted})
        return rpc.identity.list_users(tenant_id=None if wanted == ALL_TENANTS else wanted, with_tenants=True,
                                       **query)


@bp.post("")
@requires("admin.users")
@bp.input(UserCreateIn, arg_name="body")
@bp.output(CreatedUserOut, status_code=201, description="The new active user and its generated password")
@bp.doc(summary="Create a user", description=(
    "Needs `admin.users`. The user is active and must change the generated password, which is "
    "in this answer only. `role` and `groups` are optional."),
    responses={**NEEDS, 409: "Username or email taken", 422: "Invalid fields, unknown role or group"})
def create_user(body):
    role, groups = body.pop("role", None), body.pop("groups", None)
    tenant_id = current_principal().tenant_id
    with current_app.extensions["rpc"].client() as rpc:
        created = rpc.identity.create_user(actor().__dict__, **body, tenant_id=tenant_id, role=role, groups=groups,
                                           with_access=True)
    return created, 201, {"Location": f"/api/v1/users/{created['user']['id']}"}


@bp.patch("/<string:user_id>")
@requires("admin.users")
@bp.input(UserPatchIn, arg_name="body")
@bp.output(UserDetailOut, headers=ETAG_HEADER)
@bp.doc(summary="Change a user", description=(
    "Needs `admin.users`. Only the fields sent change. `status`: pending→active approves, "
    "active↔suspended, pending→suspended refuses. `role` replaces the role in the caller's tenant; "
    "`groups` are added. Send `If-Match: <ETag>` to refuse a change based on a stale read (412)."),
    responses={**CHANGE, 409: "Username or email taken, or a status change not allowed",
               412: "If-Match names an old version", 422: "Invalid fields, unknown role or group"})
def update_user(user_id, body):
    role, groups = body.pop("role", None), body.pop("groups", None)
    tenant_id = current_principal().tenant_id
    with current_app.extensions["rpc"].client() as rpc:
        if not is_super_admin():  # a super admin's 404 for a user outside the active tenant is identity's
            changeable_user(rpc, user_id)
        try:
            user = rpc.identity.update_user(actor().__dict__, user_id, body, expected_version=_if_match(),
                                            role=role, tenant_id=tenant_id, groups=groups, with_access=True,
                                            in_tenant=True)
        finally:  # a compensated change was a change too
            session_cache().forget_user(user_id)  # this process at once; the others by the event
    return user, 200, _etag(user)


@bp.delete("/<string:user_id>")
@requires("admin.users")
@bp.output({}, status_code=204)
@bp.doc(summary="Remove a user", description=(
    "Needs `admin.users`. Deletes the account, its sessions, roles and group memberships; the audit "
    "trail keeps its past actions by name. An invited user's pending invitation is revoked."),
    responses=CHANGE)
def remove_user(user_id):
    with current_app.extensions["rpc"].client() as rpc:
        if not is_super_admin():  # a super admin's 404 for a user outside the active tenant is identity's
            changeable_user(rpc, user_id)
        rpc.identity.remove_user(actor().__dict__, user_id, tenant_id=current_principal().tenant_id)
    session_cache().forget_user(user_id)
    return "", 204


def _describe(rpc, user, tenant_id):
    """The user with rbac's current role in the tenant and groups."""
    access = rpc.rbac.user_access(user["id"], tenant_id)
    roles = {entry["tenant_id"]: entry["role"] for entry in access["roles"]}
    return {**user, "role": roles.get(tenant_id), "groups": access["groups"]}


def _etag(user):
    return etag(user)


def _if_match():
    return if_match("user")
