"""Every event rbac publishes, in one place.

identity keeps its user list's role column from role_assigned/role_unassigned;
proxmox_sync propagates memberships and roles.
"""
from __future__ import annotations

from kernel.envelope import Actor, Event, Resource

ROLE_ASSIGNED = "rbac.role_assigned"
ROLE_UNASSIGNED = "rbac.role_unassigned"
MEMBER_ADDED = "rbac.member_added"
MEMBER_REMOVED = "rbac.member_removed"

ALL = (ROLE_ASSIGNED, ROLE_UNASSIGNED, MEMBER_ADDED, MEMBER_REMOVED)


def role_assigned(user_id: str, username: str | None, tenant_id: str, role: str, actor: Actor,
                  previous: str | None = None) -> Event:
    return Event(type=ROLE_ASSIGNED, source="rbac", category="rbac", actor=actor, tenant_id=tenant_id,
                 resource=Resource("user", user_id, username),
                 data={"user_id": user_id, "role": role, "previous_role": previous, "tenant_id": tenant_id})


def role_unassigned(user_id: str, username: str | None, tenant_id: str, role: str, actor: Actor) -> Event:
    return Event(type=ROLE_UNASSIGNED, source="rbac", category="rbac", actor=actor, tenant_id=tenant_id,
                 resource=Resource("user", user_id, username),
                 data={"user_id": user_id, "role": role, "tenant_id": tenant_id})


def member_added(group, user_id: str, username: str | None, actor: Actor) -> Event:
    return Event(type=MEMBER_ADDED, source="rbac", category="rbac", actor=actor,
                 resource=Resource("group", group.id, group.cn),
                 data={"group": group.cn, "gid_number": group.gid_number, "user_id": user_id, "username": username})


def member_removed(group, user_id: str, username: str | None, actor: Actor) -> Event:
    return Event(type=MEMBER_REMOVED, source="rbac", category="rbac", actor=actor,
                 resource=Resource("group", group.id, group.cn),
                 data={"group": group.cn, "gid_number": group.gid_number, "user_id": user_id, "username": username})
