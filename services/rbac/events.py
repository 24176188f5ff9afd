"""Every event rbac publishes, in one place.

identity keeps its user list's role column from role_assigned/role_unassigned;
proxmox_sync propagates memberships and roles; the gateway drops its cached
authorization decisions on any rbac event.
"""
from __future__ import annotations

from kernel.envelope import Actor, Event, Resource

ROLE_CREATED = "rbac.role_created"
ROLE_UPDATED = "rbac.role_updated"
ROLE_DELETED = "rbac.role_deleted"
ROLE_ASSIGNED = "rbac.role_assigned"
ROLE_UNASSIGNED = "rbac.role_unassigned"
GROUP_CREATED = "rbac.group_created"
GROUP_UPDATED = "rbac.group_updated"
GROUP_DELETED = "rbac.group_deleted"
MEMBER_ADDED = "rbac.member_added"
MEMBER_REMOVED = "rbac.member_removed"
AUTHORIZATION_DENIED = "rbac.authorization_denied"

ALL = (ROLE_CREATED, ROLE_UPDATED, ROLE_DELETED, ROLE_ASSIGNED, ROLE_UNASSIGNED,
       GROUP_CREATED, GROUP_UPDATED, GROUP_DELETED, MEMBER_ADDED, MEMBER_REMOVED, AUTHORIZATION_DENIED)

# After any of these an authorization decision may differ (the gateway's cache drops its answers).
DECISION_CHANGING = tuple(type_ for type_ in ALL if type_ != AUTHORIZATION_DENIED)


def _event(type_: str, actor: Actor, resource: Resource, data: dict, tenant_id: str | None = None,
           outcome: str = "success") -> Event:
    return Event(type=type_, source="rbac", category="rbac", actor=actor, resource=resource, data=data,
                 tenant_ids=(tenant_id,) if tenant_id else (), outcome=outcome)


def _role(role) -> Resource:
    return Resource("role", role.id, role.name)


def role_created(role, actor: Actor) -> Event:
    return _event(ROLE_CREATED, actor, _role(role), {
        "name": role.name, "description": role.description, "permissions": sorted(role.permissions),
        "tenant_id": role.tenant_id}, role.tenant_id)


def role_updated(role, actor: Actor, diff: dict, description_changed: bool) -> Event:
    """diff: {"added": [...], "removed": [...]} permissions."""
    return _event(ROLE_UPDATED, actor, _role(role), {
        "name": role.name, "permissions_added": diff["added"], "permissions_removed": diff["removed"],
        "description": role.description if description_changed else None, "tenant_id": role.tenant_id},
        role.tenant_id)


def role_deleted(role, actor: Actor) -> Event:
    return _event(ROLE_DELETED, actor, _role(role), {
        "name": role.name, "permissions": sorted(role.permissions), "tenant_id": role.tenant_id}, role.tenant_id)


def role_assigned(user_id: str, username: str | None, tenant_id: str, role: str, actor: Actor,
                  previous: str | None = None, scope: dict | None = None) -> Event:
    return _event(ROLE_ASSIGNED, actor, Resource("user", user_id, username),
                  {"user_id": user_id, "role": role, "previous_role": previous, "tenant_id": tenant_id,
                   "scope": scope or {}}, tenant_id)


def role_unassigned(user_id: str, username: str | None, tenant_id: str, role: str, actor: Actor) -> Event:
    return _event(ROLE_UNASSIGNED, actor, Resource("user", user_id, username),
                  {"user_id": user_id, "role": role, "tenant_id": tenant_id}, tenant_id)


def _group(group) -> Resource:
    return Resource("group", group.id, group.cn)


def _group_fields(group) -> dict:
    return {"cn": group.cn, "gid_number": group.gid_number, "description": group.description,
            "is_admin": group.is_admin, "tenant_id": group.tenant_id}


# A group's events are its tenant's (envelope tenant_ids): another tenant's audit view never shows
# them. A platform-wide group's (tenant_id None) are the platform's.


def group_created(group, actor: Actor) -> Event:
    return _event(GROUP_CREATED, actor, _group(group), _group_fields(group), group.tenant_id)


def group_updated(group, actor: Actor, changes: dict) -> Event:
    """changes: field -> {"from": old, "to": new}."""
    return _event(GROUP_UPDATED, actor, _group(group), {**_group_fields(group), "changes": changes}, group.tenant_id)


def group_deleted(group, actor: Actor, members: int) -> Event:
    return _event(GROUP_DELETED, actor, _group(group), {**_group_fields(group), "members": members}, group.tenant_id)


def member_added(group, user_id: str, username: str | None, actor: Actor) -> Event:
    return _event(MEMBER_ADDED, actor, _group(group),
                  {"group": group.cn, "gid_number": group.gid_number, "is_admin": group.is_admin,
                   "tenant_id": group.tenant_id, "user_id": user_id, "username": username}, group.tenant_id)


def member_removed(group, user_id: str, username: str | None, actor: Actor) -> Event:
    return _event(MEMBER_REMOVED, actor, _group(group),
                  {"group": group.cn, "gid_number": group.gid_number, "is_admin": group.is_admin,
                   "tenant_id": group.tenant_id, "user_id": user_id, "username": username}, group.tenant_id)


def authorization_denied(actor: Actor, permission: str, tenant_id: str, route: str | None) -> Event:
    return _event(AUTHORIZATION_DENIED, actor, Resource("permission", permission, permission),
                  {"permission": permission, "route": route, "tenant_id": tenant_id}, tenant_id, outcome="failure")
