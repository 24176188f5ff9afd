"""Roles: the built-in ones (in code, domain.BUILTIN_ROLES), global custom roles and each tenant's own.

Use cases take a unit of work not yet entered and enter it themselves (see access.py).
"""
from __future__ import annotations

import uuid

from kernel.envelope import utc_now
from kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed, refuse_stale_edit
from services.rbac import access, domain, events, storage, views
from services.rbac.storage import Role


def list_roles(uow, tenant_id) -> list[dict]:
    """Built-in roles, global custom roles and the tenant's own roles, with how many users hold each there."""
    with uow:
        counts = storage.assignment_counts(uow.session, tenant_id)
        builtins = [views.builtin_role_out(name, counts.get(name, 0)) for name in domain.BUILTIN_ROLES]
        custom = [views.role_out(role, counts.get(role.name, 0))
                  for role in storage.visible_roles(uow.session, tenant_id)]
    return builtins + custom


def get_role(uow, role_id, tenant_id) -> dict:
    with uow:
        counts = storage.assignment_counts(uow.session, tenant_id)
        if role_id in domain.BUILTIN_ROLES:
            return views.builtin_role_out(role_id, counts.get(role_id, 0))
        role = visible_role(uow.session, role_id, tenant_id)
        return views.role_out(role, counts.get(role.name, 0))


def create_role(uow, actor, name, permissions, description, tenant_id, is_global) -> dict:
    """A custom role of the tenant, or a global one (super admins only); never beyond the creator's permissions."""
    if problems := domain.role_problems(name, description, permissions):
        raise ValidationFailed("The role has invalid fields.", details=problems)
    with uow:
        access.require_rbac_admin(uow.session, actor, tenant_id)
        granter = access.grant(uow.session, actor.user_id, tenant_id)
        if is_global and not granter.super_admin:
            raise Forbidden("Only a super admin can create global roles.", code="super_admin_only")
        access.refuse_escalation(granter, permissions)
        if taken := name_clash(uow.session, name, None if is_global else tenant_id):
            raise Conflict(f"A role named {name!r} already exists{taken}.", code="role_exists",
                           details={"name": "already in use"})
        now = utc_now()
        role = Role(id=str(uuid.uuid4()), name=name, tenant_id=None if is_global else tenant_id,
                    description=description or "", permissions=sorted(set(permissions)),
                    created_at=now, updated_at=now, version=1)
        uow.session.add(role)
        uow.emit(events.role_created(role, actor))
        uow.commit()
    return views.role_out(role, 0)


def update_role(uow, actor, role_id, tenant_id, description=None, permissions=None, expected_version=None) -> dict:
    """Changes a custom role's description and/or permissions (its name is fixed).

    expected_version: the version the caller read (If-Match); another one is refused (412).
    """
    if problems := domain.role_problems(None, description, permissions):
        raise ValidationFailed("The role has invalid fields.", details=problems)
    with uow:
        role, granter = changeable_role(uow.session, actor, role_id, tenant_id)
        refuse_stale_edit("role", role.version, expected_version)
        # Neither what the role holds now nor what it will hold may exceed the editor's permissions.
        access.refuse_escalation(granter, set(role.permissions) | set(permissions or ()))
        diff = domain.permission_diff(role.permissions, role.permissions if permissions is None else permissions)
        description_changed = description is not None and description != role.description
        if diff["added"] or diff["removed"] or description_changed:
            if permissions is not None:
                role.permissions = sorted(set(permissions))
            if description is not None:
                role.description = description
            role.version += 1
            role.updated_at = utc_now()
            uow.emit(events.role_updated(role, actor, diff, description_changed))
            uow.commit()
        count = storage.assignment_counts(uow.session, tenant_id).get(role.name, 0)
    return views.role_out(role, count)


def delete_role(uow, actor, role_id, tenant_id) -> None:
    with uow:
        role, granter = changeable_role(uow.session, actor, role_id, tenant_id)
        access.refuse_escalation(granter, role.permissions)
        holders = storage.assignment_counts(uow.session, role.tenant_id).get(role.name, 0)
        if holders:
            raise Conflict(f"The role {role.name!r} is assigned to {holders} user(s); reassign them first.",
                           code="role_in_use", details={"users": holders})
        uow.session.delete(role)
        uow.emit(events.role_deleted(role, actor))
        uow.commit()


# --- helpers (inside a unit of work) ------------------------------------------------------------

def visible_role(session, role_id, tenant_id, for_update=False) -> Role:
    role = session.get(Role, role_id, with_for_update=for_update)
    if role is None or role.tenant_id not in (None, tenant_id):
        raise NotFound("No such role.", code="role_not_found")
    return role


def changeable_role(session, actor, role_id, tenant_id) -> tuple[Role, domain.Grant]:
    access.require_rbac_admin(session, actor, tenant_id)
    if role_id in domain.BUILTIN_ROLES:
        raise Forbidden("Built-in roles cannot be changed or deleted.", code="builtin_role_protected")
    role = visible_role(session, role_id, tenant_id, for_update=True)  # concurrent edits queue up
    granter = access.grant(session, actor.user_id, tenant_id)
    if role.tenant_id is None and not granter.super_admin:
        raise Forbidden("Only a super admin can change global roles.", code="super_admin_only")
    return role, granter


def name_clash(session, name, tenant_id) -> str | None:
    """Where a new role's name is already used, or None. A global name clashes with every tenant's."""
    for role in storage.roles_named(session, name):
        if role.tenant_id is None:
            return " (global)"
        if tenant_id is None or role.tenant_id == tenant_id:
            return f" in tenant {role.tenant_id}"
    return None
