"""Who may do what: a user's grant in a tenant, the checks rbac's changes make with it, the authority
rule over other accounts (docs/security.md), and the decisions the gateway asks for.

Use cases take a unit of work not yet entered (`db.unit_of_work()`) and enter it themselves, as
often as they need: tenant memberships are asked over RPC (`Memberships`), never inside one (SQLite:
a green thread must not yield holding a transaction). Helpers named with a session or an entered
unit of work run inside the caller's.
"""
from __future__ import annotations

import sqlalchemy as sa

from kernel import DEFAULT_TENANT_ID
from kernel.errors import Forbidden, NotFound, ValidationFailed
from services.rbac import domain, events, storage, views
from services.rbac.storage import RoleAssignment

AUTHORITY_MESSAGES = {
    domain.TARGET_SUPER_ADMIN: "Only a super admin can act on a super admin's account.",
    domain.NOT_ADMINISTERED: "This user belongs to tenants you do not administer (admin.users): only an "
                             "administrator of all of them, or a super admin, may act on their account.",
    domain.MORE_RIGHTS: "This user holds rights you do not have: only someone whose rights cover theirs "
                        "may act on their account.",
    domain.NO_TENANT: "This user belongs to no tenant: only a super admin may act on their account.",
}
REFUSALS = {
    "unknown_role": (ValidationFailed, "There is no role {role!r}."),
    "super_admin_only": (Forbidden, "Only a super admin can grant super_admin."),
    "escalation": (Forbidden, "You cannot grant the role {role!r}: it holds permissions you do not have."),
}


class Memberships:
    """Who belongs where, as rbac asks it over RPC: tenancy's memberships, and identity's read model for
    a user created moments ago (tenancy has not enrolled them yet). Neither calls back here.
    `tenancy` and `identity` are the service's RpcProxies (or anything with the same methods)."""

    def __init__(self, tenancy, identity):
        self.tenancy, self.identity = tenancy, identity

    def in_tenant(self, user_id, tenant_id) -> bool:
        """Whether the user is a member of the tenant: tenancy's memberships; a user tenancy has not
        enrolled yet (created moments ago) by identity's read model, written when it was created."""
        tenants = {membership["tenant_id"] for membership in self.tenancy.memberships_of(user_id)}
        if not tenants:
            try:
                tenants = set(self.identity.user_tenants(user_id))
            except NotFound:
                return False
        return tenant_id in tenants

    def tenant_members(self, tenant_id, user_ids) -> set[str]:
        """Those of user_ids who are members of the tenant."""
        return set(self.tenancy.members_among(tenant_id, sorted(set(user_ids)))) if user_ids else set()

    def tenants_of(self, user_id) -> set[str]:
        """Every tenant identity and tenancy know the user in (identity's read model has users made moments
        ago, tenancy those assigned moments ago). NotFound for no such user."""
        tenants = set(self.identity.user_tenants(user_id))
        return tenants | {membership["tenant_id"] for membership in self.tenancy.memberships_of(user_id)}


# --- grants ------------------------------------------------------------------------------

def grant(db, user_id, tenant_id) -> domain.Grant:
    """What the user holds in the tenant, read in one query (db: a session or a connection)."""
    if not user_id:
        return domain.Grant()
    held = storage.grant_inputs(db, user_id, tenant_id)
    return domain.grant_of(held.role, domain.role_permissions(held.role, held.custom_permissions),
                           held.super_admin, held.scope)


def current_grant(engine, cache, user_id, tenant_id) -> domain.Grant:
    """The grant as committed now, from the process's cache (grant_cache.py) while the grant generation
    is unchanged. A plain connection, not a unit of work: the ORM session would cost more than the queries."""
    with engine.connect() as conn:
        generation = storage.grant_generation(conn)  # first: see grant_cache.py
        return cache.grant(generation, (user_id, tenant_id), lambda: grant(conn, user_id, tenant_id))


def role_permissions(session, name, tenant_id) -> frozenset[str] | None:
    """The permissions of the role `name` as seen from the tenant; None if there is no such role."""
    role = None if name in domain.BUILTIN_ROLES else storage.custom_role(session, name, tenant_id)
    return domain.role_permissions(name, role.permissions if role else None)


# --- checks (inside a unit of work) --------------------------------------------------------

def require(session, user_id, permission, tenant_id):
    if permission and permission not in grant(session, user_id, tenant_id).permissions:
        raise Forbidden(f"This needs the permission {permission} in the tenant {tenant_id}.",
                        code="permission_denied", details={"permission": permission, "tenant_id": tenant_id})


def require_rbac_admin(session, actor, tenant_id):
    """Roles and groups are changed with admin.rbac in the tenant, asked here whatever the gateway asked."""
    if not actor.is_operator:
        require(session, actor.user_id, domain.ADMIN_RBAC, tenant_id)


def require_super_admin(session, actor, message):
    if not grant(session, actor.user_id, DEFAULT_TENANT_ID).super_admin:
        raise Forbidden(message, code="super_admin_only")


def refuse_escalation(granter, permissions):
    if problem := domain.escalation_problem(permissions, granter):
        missing = problem[1]
        raise Forbidden(f"You cannot give a role permissions you do not hold: {', '.join(missing)}.",
                        code="escalation", details={"permissions": missing})


def require_assignable(session, actor_user_id, role, tenant_id, scope=None):
    """`scope`: the assignment's scope once granted (None: not being set); a scoped granter hands
    out nothing wider than their own scope."""
    granter = grant(session, actor_user_id, tenant_id)
    problem = domain.assignable_problem(role, role_permissions(session, role, tenant_id), granter)
    if problem:
        code, missing = problem
        error, message = REFUSALS[code]
        details = {"role": role, **({"permissions": missing} if missing else {})}
        raise error(message.format(role=role), code=code, details=details)
    if scope is not None and not granter.super_admin and not domain.scope_covers(granter.scope, scope):
        raise Forbidden("You cannot grant a scope wider than your own.", code="escalation",
                        details={"scope": f"must stay within your own scope: {granter.scope}"})


def require_replaceable(session, actor_user_id, role, tenant_id):
    """Taking a role away needs what granting it needs; a role that no longer resolves anyone may replace."""
    if role_permissions(session, role, tenant_id) is not None:
        require_assignable(session, actor_user_id, role, tenant_id)


# --- authority over other accounts -----------------------------------------------------------

def require_authority(session, actor_user_id, target_user_id, tenant_ids=()):
    """Raises Forbidden `outside_authority` unless the actor may act on the target account
    (domain.authority_problem) in every tenant the target belongs to: `tenant_ids` and every tenant
    where the target holds a role here."""
    tenants = set(tenant_ids or ()) | set(session.scalars(
        sa.select(RoleAssignment.tenant_id).where(RoleAssignment.user_id == target_user_id)))
    actor_admin = grant(session, actor_user_id, DEFAULT_TENANT_ID).super_admin if actor_user_id else False
    target_grants = {tenant: grant(session, target_user_id, tenant) for tenant in sorted(tenants)}
    target_admin = grant(session, target_user_id, DEFAULT_TENANT_ID).super_admin
    actor_grants = {} if actor_admin else {tenant: grant(session, actor_user_id, tenant) for tenant in tenants}
    problem = domain.authority_problem(actor_grants, target_grants, target_admin, actor_admin)
    if problem is None:
        return
    details = {"user_id": target_user_id, "reason": problem.reason}
    if problem.reason == domain.MORE_RIGHTS:
        # tenants the actor administers: naming them and the permissions tells nothing new
        details.update(tenant_ids=list(problem.tenant_ids), permissions=list(problem.missing))
    raise Forbidden(AUTHORITY_MESSAGES[problem.reason], code="outside_authority", details=details)


def require_authority_over(uow, memberships: Memberships, actor, target_user_id, tenant_ids=()):
    """require_authority for rbac's own changes, before their unit of work (RPC first, then `uow`
    entered), with every tenant identity and tenancy know the target in."""
    if actor.is_operator:
        return
    with uow:  # before asking who the target is: an unknown id answers as a known one to a non-administrator
        refuse_unadministered(uow.session, actor.user_id, target_user_id, tenant_ids)
    tenants = set(tenant_ids or ()) | memberships.tenants_of(target_user_id)
    with uow:
        require_authority(uow.session, actor.user_id, target_user_id, tenants)


def refuse_unadministered(session, actor_user_id, target_user_id, tenant_ids) -> None:
    """The authority rule's first step, from rbac's own tables: the tenants the action happens in are
    the target's, so the actor needs admin.users in each (a super admin passes)."""
    for tenant in sorted(set(tenant_ids or ())):
        held = grant(session, actor_user_id, tenant)
        if not held.super_admin and domain.ADMIN_USERS not in held.permissions:
            raise Forbidden(AUTHORITY_MESSAGES[domain.NOT_ADMINISTERED], code="outside_authority",
                            details={"user_id": target_user_id, "reason": domain.NOT_ADMINISTERED})


# --- decisions (use cases) -------------------------------------------------------------------

def effective_permissions(uow, user_id, tenant_id) -> dict:
    """What the user may do in the tenant: role, permissions, scope, and their groups (for the UI)."""
    with uow:
        held = grant(uow.session, user_id, tenant_id)
        groups = storage.memberships_of(uow.session, user_id, tenant_id)
    return views.effective_permissions(tenant_id, held, groups)


def authorize(engine, cache, user_id, permission, tenant_id, resource=None) -> bool:
    """Whether the user holds `permission` in the tenant and, given a resource
    ({"connection": id, "node": name, "storage": id}, any subset), whether their scope covers it.
    `super_admin` asks whether the user is a super admin there."""
    if permission not in domain.PERMISSIONS and permission != domain.SUPER_ADMIN_ONLY:
        raise ValidationFailed(f"Unknown permission {permission!r}.", code="unknown_permission",
                               details={"permission": "is not in the catalogue"})
    return domain.holds(current_grant(engine, cache, user_id, tenant_id), permission, resource)


def record_denial(uow, actor, permission, tenant_id, route=None) -> None:
    """The gateway refused a request for lack of `permission`: audited as authorization_denied."""
    with uow:
        uow.emit(events.authorization_denied(actor, permission, tenant_id, route))
        uow.commit()


def check_authority(uow, actor_user_id, target_user_id, tenant_ids=()) -> None:
    """require_authority in a unit of work of its own. The operator CLI (no user id) is a super admin:
    callers let it through without asking."""
    with uow:
        require_authority(uow.session, actor_user_id, target_user_id, tenant_ids)


def check_assignable(uow, actor_user_id, role, tenant_id, scope=None) -> None:
    """Raises unless the actor may hand out `role` in the tenant (before an invitation is sent),
    and, when given, with `scope` ({} or None lists: unscoped)."""
    with uow:
        require_assignable(uow.session, actor_user_id, role, tenant_id, scope)
