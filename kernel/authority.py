"""The authority checks every service makes for itself, asking rbac (docs/security.md).

- `require_permission`: the route's own permission, held by the actor in the tenant the call acts in
  (a super admin holds every permission everywhere; `tenant_id` None, "any tenant", needs one).
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
from kernel.errors import Forbidden, ValidationFailed

SUPER_ADMIN_REQUIRED = "super_admin_only"
PERMISSION_DENIED = "permission_denied"


def require_permission(rbac, actor: Actor | dict, permission: str, tenant_id: str | None,
                       tenant_required: bool = False) -> None:
    """Raises Forbidden `permission_denied` (details: permission, tenant_id) unless the actor holds
    `permission` in the tenant: one `rbac.authorize` RPC, asked before the use case looks anything up, so a
    refusal says nothing about whether the ids it was given exist. `tenant_id` None means every tenant:
    only a super admin acts there; `tenant_required`: None is refused outright (422), for calls that
    create something in one tenant. The operator CLI passes."""
    actor = actor if isinstance(actor, Actor) else Actor.from_dict(actor)
    if tenant_id is None and tenant_required:
        raise ValidationFailed("A tenant is required.", code="tenant_required",
                               details={"tenant_id": "is required"})
    if actor.is_operator:
        return
    wanted, where = (permission, tenant_id) if tenant_id is not None else (SUPER_ADMIN_ONLY, DEFAULT_TENANT_ID)
    if actor.user_id and rbac.authorize(actor.user_id, wanted, where):
        return
    if tenant_id is None:
        raise Forbidden("Only super admins act in every tenant at once.", code=PERMISSION_DENIED,
                        details={"permission": SUPER_ADMIN_ONLY, "tenant_id": None})
    raise Forbidden(f"This needs the permission {permission} in the tenant {tenant_id}.", code=PERMISSION_DENIED,
                    details={"permission": permission, "tenant_id": tenant_id})


def require_authority(rbac, actor: Actor, target_user_id: str, tenant_ids=()) -> None:
    """Raises Forbidden `outside_authority` (from rbac) unless the actor may act on the target account.
    tenant_ids: the tenants the calling service knows the target in (rbac adds those of its roles)."""
    if actor.is_operator:
        return
    rbac.check_authority(actor.user_id, target_user_id, sorted(set(tenant_ids)))


def require_super_admin(rbac, actor: Actor, what: str = "the platform settings") -> None:
    """Raises Forbidden `super_admin_only` unless the actor is a super admin (or the operator CLI)."""
    actor = actor if isinstance(actor, Actor) else Actor.from_dict(actor)
    if actor.is_operator:
        return
    if actor.user_id and rbac.authorize(actor.user_id, SUPER_ADMIN_ONLY, DEFAULT_TENANT_ID):
        return
    raise Forbidden(f"Only super admins may change {what}: they are the provider's, not a tenant's.",
                    code=SUPER_ADMIN_REQUIRED, details={"permission": SUPER_ADMIN_ONLY})
