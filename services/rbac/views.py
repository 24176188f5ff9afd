"""RBAC's answers: the dicts its RPCs return to the gateway (and to proxmox_sync), made from rows and grants."""
from __future__ import annotations

from kernel.db import iso
from services.rbac import domain
from services.rbac.storage import GroupMember


def permission_out(permission) -> dict:
    return {"name": permission.name, "category": permission.category, "description": permission.description,
            "dangerous": permission.dangerous}


def effective_permissions(tenant_id, grant: domain.Grant, groups) -> dict:
    return {"tenant_id": tenant_id, "role": grant.role, "super_admin": grant.super_admin,
            "permissions": sorted(grant.permissions), "scope": domain.normalize_scope(grant.scope),
            "groups": [{"cn": g.cn, "is_admin": g.is_admin} for g in groups]}


def builtin_role_out(name, user_count) -> dict:
    return {"id": name, "name": name, "description": domain.BUILTIN_ROLE_DESCRIPTIONS[name],
            "permissions": sorted(domain.BUILTIN_ROLES[name]), "builtin": True, "is_global": True, "tenant_id": None,
            "user_count": user_count, "created_at": None, "updated_at": None, "version": domain.BUILTIN_ROLE_VERSION}


def role_out(role, user_count) -> dict:
    return {"id": role.id, "name": role.name, "description": role.description,
            "permissions": sorted(role.permissions), "builtin": False, "is_global": role.tenant_id is None,
            "tenant_id": role.tenant_id,
            "user_count": user_count, "created_at": iso(role.created_at), "updated_at": iso(role.updated_at),
            "version": role.version}


def assignment_out(assignment) -> dict:
    return {"user_id": assignment.user_id, "tenant_id": assignment.tenant_id, "role": assignment.role,
            "scope": domain.normalize_scope(assignment.scope), "locked": bool(assignment.locked),
            "assigned_at": iso(assignment.assigned_at)}


def user_access(assignments, groups) -> dict:
    return {"roles": [{"tenant_id": a.tenant_id, "role": a.role, "scope": domain.normalize_scope(a.scope)}
                      for a in assignments],
            "groups": [g.cn for g in groups]}


def access_in_tenant(grants: dict[str, domain.Grant], roles: dict[str, frozenset[str]]) -> dict:
    """grants: {user_id: grant} in user id order; roles: the custom roles visible in the tenant."""
    return {"access": [{"user_id": user_id, "role": grant.role, "permissions": sorted(grant.permissions),
                        "scope": domain.normalize_scope(grant.scope), "super_admin": grant.super_admin}
                       for user_id, grant in grants.items()],
            "custom_roles": [{"name": name, "permissions": sorted(permissions)} for name, permissions in roles.items()]}


def group_out(group, member_count=None) -> dict:
    out = {"id": group.id, "cn": group.cn, "gid_number": group.gid_number, "description": group.description,
           "is_admin": group.is_admin, "builtin": group.builtin, "tenant_id": group.tenant_id,
           "platform": group.tenant_id is None, "created_at": iso(group.created_at)}
    if member_count is not None:
        out["member_count"] = member_count
    return out


def directory_group_out(group, member_ids) -> dict:
    return {"group_id": group.id, "cn": group.cn, "gid_number": group.gid_number,
            "description": group.description, "is_admin": group.is_admin, "tenant_id": group.tenant_id,
            "member_ids": member_ids}


def member_out(member: GroupMember) -> dict:
    return {"user_id": member.user_id, "username": member.username, "added_at": iso(member.added_at)}
