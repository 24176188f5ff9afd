"""Users confined to the session's active tenant: one place for every route that takes a user id.

- A user who is not a member of the active tenant is answered 404, for everyone (super admins
  switch tenant or use the cross-tenant view `GET /api/v1/users?tenant=*`): ids cannot be probed.
- A change to a user who also belongs to other tenants needs `admin.users` in every one of them
  (or a super admin): else 403 `cross_tenant_user`, naming none of those tenants. No takeover
  of another tenant's user through a shared membership.

Both are conveniences that answer early: the services enforce the whole authority rule themselves
(rbac.check_authority, docs/security.md).
"""
from __future__ import annotations

from gateway.auth import current_principal, holds, is_super_admin
from kernel.errors import Forbidden, NotFound

ADMIN_USERS = "admin.users"


def visible_user(rpc, user_id: str) -> list[str]:
    """The user's tenants (identity's read model); 404 unless the active tenant is one of them."""
    tenants = rpc.identity.user_tenants(user_id)  # NotFound for no such user
    if current_principal().tenant_id not in tenants:
        raise NotFound("No such user.", details={"user_id": user_id})
    return tenants


def changeable_user(rpc, user_id: str) -> None:
    """visible_user, and the caller administers every tenant of the user (tenancy's memberships too:
    one assigned moments ago counts before identity hears of it)."""
    tenants = set(visible_user(rpc, user_id))
    if is_super_admin():
        return
    tenants |= {membership["tenant_id"] for membership in rpc.tenancy.memberships_of(user_id)}
    if not all(holds(ADMIN_USERS, tenant_id) for tenant_id in sorted(tenants)):
        raise Forbidden("This user also belongs to tenants you do not administer: only an administrator of all "
                        "of them, or a super admin, may change them.", code="cross_tenant_user",
                        details={"user_id": user_id})
