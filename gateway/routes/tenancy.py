"""/api/v1/tenancy (the multi-tenancy switch), /api/v1/tenants and their members.

Tenancy owns tenants and memberships, rbac the role a member holds in a tenant. Assigning
a member with a role checks first everything rbac could refuse, then asks tenancy, whose
event carries the role to rbac: the membership and its role commit together and cannot
part. A tenant the caller does not belong to is answered as 404 (super admins see all).
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, holds, is_super_admin, requires
from gateway.etags import ETAG_HEADER, etag, if_match
from gateway.schemas import PageQuery
from gateway.schemas.tenancy import (
    TenancyStatusOut,
    TenantIn,
    MembershipOut,
    TenantMemberIn,
    TenantMemberPageOut,
    TenantOut,
    TenantPageOut,
    TenantPatchIn,
)
from kernel import SUPER_ADMIN_ONLY
from kernel.errors import Forbidden, NotFound

bp = APIBlueprint("tenancy", __name__, url_prefix="/api/v1", tag="Tenancy")

ADMIN_USERS = "admin.users"
SIGNED_IN = {401: "Not signed in"}
SUPER_ONLY = {401: "Not signed in", 403: "Super admins only"}
ADOPTION_PAGE = 200


def _rpc():
    return current_app.extensions["rpc"].client()


def _actor() -> dict:
    return actor().__dict__


# --- the switch ------------------------------------------------------------------------------------


@bp.get("/tenancy")
@requires("tenant.view")
@bp.output(TenancyStatusOut)
@bp.doc(summary="Whether multi-tenancy is enabled", description="Needs `tenant.view`.",
        responses={**SIGNED_IN, 403: "Missing permission tenant.view"})
def status():
    with _rpc() as rpc:
        return rpc.tenancy.status()


@bp.post("/tenancy/enable")
@requires(SUPER_ADMIN_ONLY)
@bp.output(TenancyStatusOut)
@bp.doc(summary="Enable multi-tenancy", description=(
    "Super admins. Everything that exists stays in the `default` tenant (users that belong to no "
    "tenant join it first); new tenants can be created from now on. Enabling again changes nothing."),
    responses=SUPER_ONLY)
def enable():
    with _rpc() as rpc:
        if not rpc.tenancy.status()["enabled"]:
            _adopt_existing_users(rpc)
        return rpc.tenancy.enable(_actor())


@bp.post("/tenancy/disable")
@requires(SUPER_ADMIN_ONLY)
@bp.output(TenancyStatusOut)
@bp.doc(summary="Disable multi-tenancy", description="Super admins. Refused while tenants besides `default` exist.",
        responses={**SUPER_ONLY, 409: "Other tenants exist (`tenants_exist`)"})
def disable():
    with _rpc() as rpc:
        return rpc.tenancy.disable(_actor())


def _adopt_existing_users(rpc):
    """Users made before tenancy followed identity join `default`, so enabling leaves nobody out."""
    cursor = None
    while True:
        page = rpc.identity.list_users(tenant_id=None, sort="created_at", order="asc",
                                       limit=ADOPTION_PAGE, cursor=cursor)
        users = [{"id": u["id"], "username": u["username"]} for u in page["items"] if u["status"] != "invited"]
        if users:
            rpc.tenancy.adopt_users(_actor(), users)
        cursor = page["next_cursor"]
        if not cursor:
            return


# --- tenants ---------------------------------------------------------------------------------------


@bp.get("/tenants")
@requires("tenant.view")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(TenantPageOut)
@bp.doc(summary="Tenants", description="Needs `tenant.view`. Super admins see every tenant, others those they "
        "belong to; `default` first, then by name.", responses={**SIGNED_IN, 403: "Missing permission tenant.view"})
def list_tenants(query):
    with _rpc() as rpc:
        visible = None if is_super_admin() else [m["tenant_id"] for m in
                                                 rpc.tenancy.memberships_of(current_principal().user_id)]
        return rpc.tenancy.list_tenants(visible, query["limit"], query.get("cursor"))


@bp.post("/tenants")
@requires(SUPER_ADMIN_ONLY)
@bp.input(TenantIn, arg_name="body")
@bp.output(TenantOut, status_code=201, description="The new tenant, with no connections or users", headers=ETAG_HEADER)
@bp.doc(summary="Create a tenant", description="Super admins (`tenant.manage`), once multi-tenancy is enabled.",
        responses={**SUPER_ONLY, 409: "Multi-tenancy disabled, or the name is taken", 422: "Invalid fields"})
def create_tenant(body):
    with _rpc() as rpc:
        tenant = rpc.tenancy.create_tenant(_actor(), body["name"], body["description"])
    return tenant, 201, {"Location": f"/api/v1/tenants/{tenant['id']}", **etag(tenant)}


@bp.get("/tenants/<string:tenant_id>")
@requires("tenant.view")
@bp.output(TenantOut, headers=ETAG_HEADER)
@bp.doc(summary="One tenant", description="Needs `tenant.view`; a tenant you do not belong to is 404 (super admins "
        "see all). The `ETag` is its version, for `If-Match`.",
        responses={**SIGNED_IN, 403: "Missing permission tenant.view", 404: "No such tenant"})
def get_tenant(tenant_id):
    with _rpc() as rpc:
        _visible(rpc, tenant_id)
        tenant = rpc.tenancy.get_tenant(tenant_id)
    return tenant, 200, etag(tenant)


@bp.patch("/tenants/<string:tenant_id>")
@requires("tenant.manage")
@bp.input(TenantPatchIn, arg_name="body")
@bp.output(TenantOut, headers=ETAG_HEADER)
@bp.doc(summary="Rename or describe a tenant", description="Needs `tenant.manage` (super admins). Send "
        "`If-Match: <ETag>` to refuse a change based on a stale read (412).",
        responses={**SIGNED_IN, 403: "Missing permission tenant.manage", 404: "No such tenant",
                   409: "Name taken", 412: "If-Match names an old version", 422: "Invalid fields"})
def update_tenant(tenant_id, body):
    with _rpc() as rpc:
        _visible(rpc, tenant_id)
        tenant = rpc.tenancy.update_tenant(_actor(), tenant_id, body, if_match("tenant"))
    return tenant, 200, etag(tenant)


@bp.delete("/tenants/<string:tenant_id>")
@requires(SUPER_ADMIN_ONLY)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a tenant", description=(
    "Super admins (`tenant.manage`). Refused for `default` and while the tenant owns connections "
    "(`details.connections`). Its memberships end and rbac drops its role assignments and custom roles; "
    "a user whose only tenant it was is left without one until assigned elsewhere."),
    responses={**SUPER_ONLY, 404: "No such tenant", 409: "`default_tenant_protected` or `tenant_has_connections`"})
def delete_tenant(tenant_id):
    with _rpc() as rpc:
        rpc.tenancy.delete_tenant(_actor(), tenant_id)
    return "", 204


def _visible(rpc, tenant_id):
    """404 for a tenant the caller does not belong to (unless a super admin): ids cannot be probed."""
    if not is_super_admin() and not rpc.tenancy.is_member(current_principal().user_id, tenant_id):
        raise NotFound("No such tenant.", code="tenant_not_found", details={"tenant_id": tenant_id})


# --- members -----------------------------------------------------------------------------------------


@bp.get("/tenants/<string:tenant_id>/users")
@requires("tenant.view")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(TenantMemberPageOut)
@bp.doc(summary="Members of a tenant, with their role there", description="Needs `tenant.view`; by username.",
        responses={**SIGNED_IN, 403: "Missing permission tenant.view", 404: "No such tenant"})
def list_members(tenant_id, query):
    with _rpc() as rpc:
        _visible(rpc, tenant_id)
        page = rpc.tenancy.list_members(tenant_id, query["limit"], query.get("cursor"))
        roles = rpc.rbac.roles_in_tenant(tenant_id, [m["user_id"] for m in page["items"]])
    page["items"] = [{**member, "role": roles.get(member["user_id"])} for member in page["items"]]
    return page


@bp.get("/tenants/<string:tenant_id>/users/<string:user_id>")
@requires("tenant.view")
@bp.output(MembershipOut)
@bp.doc(summary="One member of a tenant, with their role there", description="Needs `tenant.view`.",
        responses={**SIGNED_IN, 403: "Missing permission tenant.view", 404: "No such tenant or not a member"})
def get_member(tenant_id, user_id):
    with _rpc() as rpc:
        _visible(rpc, tenant_id)
        return _member(rpc, tenant_id, user_id)


@bp.put("/tenants/<string:tenant_id>/users/<string:user_id>")
@requires()
@bp.input(TenantMemberIn, arg_name="body")
@bp.output(MembershipOut, description="The membership (it existed: the role and default flag changed)")
@bp.doc(summary="Assign a user to a tenant with a role", description=(
    "Needs `admin.users` in that tenant (super admins everywhere), and the right to grant the role and to "
    "take away the user's present one there. Bringing in a user of other tenants needs `admin.users` in "
    "each of them too (no takeover across tenants), and the user must be within your authority in each of "
    "their tenants (docs/security.md). `default: true` makes it the tenant the user's "
    "sessions start in. rbac applies the role from tenancy's event, within moments. `201` when the "
    "user joined, `200` when already a member."),
    responses={**SIGNED_IN, 201: "The user joined the tenant",
               403: "No admin.users there, escalation, cross_tenant_user, outside_authority or "
                    "first_admin_protected",
               404: "No such tenant or user", 422: "Unknown role"})
def assign_member(tenant_id, user_id, body):
    principal = current_principal()
    with _rpc() as rpc:
        _require_admin_users(rpc, tenant_id)
        user = rpc.identity.get_user(user_id)  # 404 for an unknown or removed user
        rpc.tenancy.check_takeover(_actor(), tenant_id, user_id)  # first: another tenant's user is unknown
        rpc.rbac.check_assignable(principal.user_id, body["role"], tenant_id, {})
        current = _assignment(rpc, user_id, tenant_id)
        if current and current["role"] != body["role"]:
            _check_replaceable(rpc, current, tenant_id)
        membership, created = rpc.tenancy.assign_user(_actor(), tenant_id, user_id, user["username"], body["role"],
                                                      body["default"])
    answer = {**membership, "role": body["role"]}
    if created:
        return answer, 201, {"Location": f"/api/v1/tenants/{tenant_id}/users/{user_id}"}
    return answer


@bp.delete("/tenants/<string:tenant_id>/users/<string:user_id>")
@requires()
@bp.output({}, status_code=204)
@bp.doc(summary="Remove a user from a tenant", description=(
    "Needs `admin.users` in that tenant (super admins everywhere) and the right to take the user's role "
    "there away; rbac drops that role. Never a user's last tenant (`409 last_tenant`)."),
    responses={**SIGNED_IN, 403: "No admin.users there, escalation, outside_authority or first_admin_protected",
               404: "No such tenant, or not a member", 409: "The user's last tenant"})
def remove_member(tenant_id, user_id):
    with _rpc() as rpc:
        _require_admin_users(rpc, tenant_id)
        if current := _assignment(rpc, user_id, tenant_id):
            _check_replaceable(rpc, current, tenant_id)
        rpc.tenancy.remove_user(_actor(), tenant_id, user_id)
    return "", 204


def _member(rpc, tenant_id, user_id) -> dict:
    membership = rpc.tenancy.get_membership(tenant_id, user_id)
    return {**membership, "role": rpc.rbac.roles_in_tenant(tenant_id, [user_id]).get(user_id)}


def _require_admin_users(rpc, tenant_id):
    """admin.users in that tenant; a tenant the caller does not belong to is 404."""
    if is_super_admin() or holds(ADMIN_USERS, tenant_id):
        return
    _visible(rpc, tenant_id)
    raise Forbidden(f"This needs the permission {ADMIN_USERS} in the tenant.", code="permission_denied",
                    details={"permission": ADMIN_USERS, "tenant_id": tenant_id})


def _assignment(rpc, user_id, tenant_id) -> dict | None:
    return next((a for a in rpc.rbac.user_roles(user_id) if a["tenant_id"] == tenant_id), None)


def _check_replaceable(rpc, current, tenant_id):
    """Nobody takes away a role they could not have granted; the first admin's role stays."""
    if current["locked"]:
        raise Forbidden("The first administrator's role cannot be changed.", code="first_admin_protected")
    rpc.rbac.check_assignable(current_principal().user_id, current["role"], tenant_id)
