"""/api/v1/me/tenants and /api/v1/me/tenant: the tenants of the signed-in user and switching.

Both work while the session's tenant is unavailable (membership ended, tenant deleted): that is
when the user needs them.
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, is_super_admin, requires, session_cache
from gateway.schemas.isolation import ActiveTenantOut, MyTenantsOut, SwitchTenantIn
from kernel.errors import NotFound

bp = APIBlueprint("my_tenant", __name__, url_prefix="/api/v1/me", tag="Me")

TENANT_PAGE = 200


@bp.get("/tenants")
@requires(allow_without_tenant=True)
@bp.output(MyTenantsOut)
@bp.doc(summary="My tenants and the active one", description=(
    "The tenants you belong to (super admins: every tenant), `default` first then by name, with the "
    "one your sessions start in (`is_default`) and this session's (`active`)."),
    responses={401: "Not signed in"})
def my_tenants():
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        mine = rpc.tenancy.memberships_of(principal.user_id)
        tenants = _every_tenant(rpc, mine) if is_super_admin() else mine
    items = [{**tenant, "active": tenant["tenant_id"] == principal.tenant_id} for tenant in tenants]
    return {"items": items, "next_cursor": None, "total": len(items), "active_tenant_id": principal.tenant_id}


@bp.post("/tenant")
@requires(allow_without_tenant=True)
@bp.input(SwitchTenantIn, arg_name="body")
@bp.output(ActiveTenantOut)
@bp.doc(summary="Switch this session's tenant", description=(
    "This session (only; your other sessions keep theirs) works in `tenant_id` from now on: one you "
    "belong to, or any existing one for super admins. Audited as `tenant_switched`."),
    responses={401: "Not signed in", 404: "No such tenant, or not yours (`tenant_not_found`)",
               422: "Invalid fields"})
def switch(body):
    principal, tenant_id = current_principal(), body["tenant_id"]
    with current_app.extensions["rpc"].client() as rpc:
        allowed = rpc.tenancy.is_member(principal.user_id, tenant_id) or (
            is_super_admin() and rpc.tenancy.tenant_exists(tenant_id))
        if not allowed:  # a tenant of others is not revealed: as if it did not exist
            raise NotFound("No such tenant.", code="tenant_not_found", details={"tenant_id": tenant_id})
        rpc.identity.switch_tenant(actor().__dict__, principal.session_id, tenant_id)
        name = rpc.tenancy.get_tenant(tenant_id)["name"]
    session_cache().forget_user(principal.user_id)  # this process at once; the others by the event
    return {"tenant_id": tenant_id, "tenant_name": name}


def _every_tenant(rpc, mine: list[dict]) -> list[dict]:
    defaults = {membership["tenant_id"]: membership["is_default"] for membership in mine}
    tenants, cursor = [], None
    while True:
        page = rpc.tenancy.list_tenants(None, TENANT_PAGE, cursor)
        tenants += [{"tenant_id": t["id"], "tenant_name": t["name"], "is_default": defaults.get(t["id"], False)}
                    for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return tenants
