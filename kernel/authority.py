"""The two authority checks every service makes for itself, asking rbac (docs/security.md).

- `require_authority`: the actor may act on another account (rbac's `check_authority`: their rights
  cover the target's in every tenant the target belongs to; never a super admin unless one).
- `require_super_admin`: platform settings are super admins' alone.

The operator CLI's actor (`Actor.is_operator`) counts as a super admin: it is let through without
asking. An actor without a user id that is not the CLI is refused (rbac finds no rights for it).
`rbac` is the service's `RpcProxy("rbac")` (or anything with the same two methods).
"""
from __future__ import annotations

from kernel import DEFAULT_TENANT_ID, SUPER_ADMIN_ONLY
from kernel.envelope import Actor
from kernel.errors import Forbidden

SUPER_ADMIN_REQUIRED = "super_admin_only"


def require_authority(rbac, actor: Actor, target_user_id: str, tenant_ids=()) -> None:
    """Raises Forbidden `outside_authority` (from rbac) unless the actor may act on the target account.
    tenant_ids: the tenants the calling service knows the target in (rbac adds those of its roles)."""
    if actor.is_operator:
        return
    rbac.check_authority(actor.user_id, target_user_id, sorted(set(tenant_ids)))


def require_super_admin(rbac, actor: Actor, what: str = "the platform settings") -> None:
    """Raises Forbidden `super_admin_only` unless the actor is a super admin (or the operator CLI)."""
    if actor.is_operator:
        return
    if actor.user_id and rbac.authorize(actor.user_id, SUPER_ADMIN_ONLY, DEFAULT_TENANT_ID):
        return
    raise Forbidden(f"Only super admins may change {what}: they are the provider's, not a tenant's.",
                    code=SUPER_ADMIN_REQUIRED, details={"permission": SUPER_ADMIN_ONLY})
