"""Role assignments: one role per user and tenant, optionally narrowed by a scope; what each user
holds where, for the gateway's user administration and for proxmox_sync's ACLs.

Use cases take a unit of work not yet entered and enter it themselves (see access.py).
"""
from __future__ import annotations

import sqlalchemy as sa

from kernel.envelope import utc_now
from kernel.errors import Forbidden, NotFound, ValidationFailed
from services.rbac import access, domain, events, storage, views
from services.rbac.storage import RoleAssignment


def assign_role(uow, memberships, actor, user_id, role, tenant_id, username=None, scope=None,
                required_permission=None) -> dict:
    """Gives the user `role` in the tenant (replacing their previous one), narrowed by `scope`.

    required_permission: a permission the actor must also hold in that tenant (the gateway
    checked it only in the actor's active tenant).
    """
    if problems := domain.scope_problems(scope):
        raise ValidationFailed("The scope is invalid.", code="invalid_scope", details=problems)
    access.require_authority_over(uow, memberships, actor, user_id, (tenant_id,))
    with uow:
        access.require(uow.session, actor.user_id, required_permission, tenant_id)
        current = uow.session.get(RoleAssignment, (user_id, tenant_id))
        # no scope given: the user keeps theirs (a role change never widens it by accident)
        resulting = scope if scope is not None else (current.scope if current else {})
        access.require_assignable(uow.session, actor.user_id, role, tenant_id, resulting)
        if current and current.role != role:  # nobody demotes a user they could not have promoted
            access.require_replaceable(uow.session, actor.user_id, current.role, tenant_id)
        assignment = assign(uow, user_id, username, tenant_id, role, actor, scope=resulting)
        uow.commit()
    return views.assignment_out(assignment)


def unassign_role(uow, memberships, actor, user_id, tenant_id, username=None, required_permission=None) -> None:
    access.require_authority_over(uow, memberships, actor, user_id, (tenant_id,))
    with uow:
        access.require(uow.session, actor.user_id, required_permission, tenant_id)
        assignment = uow.session.get(RoleAssignment, (user_id, tenant_id))
        if assignment is None:
            raise NotFound("The user has no role in that tenant.", code="no_assignment")
        if assignment.locked:
            raise Forbidden("The first administrator's role cannot be changed.", code="first_admin_protected")
        access.require_replaceable(uow.session, actor.user_id, assignment.role, tenant_id)
        uow.session.delete(assignment)
        uow.emit(events.role_unassigned(user_id, username, tenant_id, assignment.role, actor))
        uow.commit()


def user_roles(uow, user_id) -> list[dict]:
    with uow:
        return [views.assignment_out(a) for a in uow.session.scalars(
            sa.select(RoleAssignment).where(RoleAssignment.user_id == user_id).order_by(RoleAssignment.tenant_id))]


def roles_in_tenant(uow, tenant_id, user_ids) -> dict[str, str]:
    """{user_id: role} of those users holding a role in the tenant (for member lists)."""
    with uow:
        return dict(uow.session.execute(sa.select(RoleAssignment.user_id, RoleAssignment.role).where(
            RoleAssignment.tenant_id == tenant_id, RoleAssignment.user_id.in_(list(user_ids)))).all())


def user_access(uow, user_id, tenant_id=None) -> dict:
    """The user's role in each tenant and their groups (those seen from `tenant_id` when given)."""
    with uow:
        roles = uow.session.scalars(sa.select(RoleAssignment).where(RoleAssignment.user_id == user_id))
        groups = storage.memberships_of(uow.session, user_id, tenant_id)
        return views.user_access(roles, groups)


def access_in_tenant(uow, tenant_id) -> dict:
    """The rights of everyone holding a role in the tenant, and of every super admin (who holds
    everything everywhere), plus the custom roles visible there: what Proxmox ACLs are made of."""
    with uow:
        roles = {role.name: frozenset(role.permissions) for role in storage.visible_roles(uow.session, tenant_id)}
        super_admins = storage.super_admin_ids(uow.session)
        assignments = {a.user_id: a for a in uow.session.scalars(
            sa.select(RoleAssignment).where(RoleAssignment.tenant_id == tenant_id))}
    grants = {}
    for user_id in sorted(set(assignments) | super_admins):
        assignment = assignments.get(user_id)
        role = assignment.role if assignment else None
        grants[user_id] = domain.grant_of(role, domain.role_permissions(role, roles.get(role)),
                                          user_id in super_admins, assignment.scope if assignment else None)
    return views.access_in_tenant(grants, roles)


# --- helpers (inside a unit of work) ------------------------------------------------------------

def assign(uow, user_id, username, tenant_id, role, actor, lock=False, scope=None) -> RoleAssignment:
    """Gives the role (an unchanged role and scope: nothing happens); the first admin's locked role stays."""
    scope = domain.normalize_scope(scope)
    assignment = uow.session.get(RoleAssignment, (user_id, tenant_id))
    previous = assignment.role if assignment else None
    if assignment and assignment.locked and role != assignment.role:
        raise Forbidden("The first administrator's role cannot be changed.", code="first_admin_protected")
    if assignment and previous == role and domain.normalize_scope(assignment.scope) == scope:
        return assignment
    if assignment is None:
        assignment = RoleAssignment(user_id=user_id, tenant_id=tenant_id, role=role, locked=lock, scope=scope,
                                    assigned_at=utc_now())
        uow.session.add(assignment)
    else:
        assignment.role, assignment.scope, assignment.assigned_at = role, scope, utc_now()
    uow.emit(events.role_assigned(user_id, username, tenant_id, role, actor, previous, scope))
    return assignment
