"""rbac's event producers: each builds its payload (contracts.events.rbac) from rows.

The event types and payload classes are rbac's contract with its consumers
(contracts/events/rbac.py); they are re-exported here for rbac's own code.
"""
from __future__ import annotations

from contracts.events import event
from contracts.events.rbac import *  # noqa: F403 - the types and payloads, re-exported for rbac's code
from contracts.events.rbac import (AuthorizationDenied, GroupCreated, GroupDeleted, GroupUpdated, MemberAdded,
                                   MemberRemoved, RoleAssigned, RoleCreated, RoleDeleted, RoleUnassigned,
                                   RoleUpdated)
from kernel.envelope import Actor, Event, Resource


def _role(role) -> Resource:
    return Resource("role", role.id, role.name)


def role_created(role, actor: Actor) -> Event:
    return event(RoleCreated(name=role.name, description=role.description, permissions=sorted(role.permissions),
                             tenant_id=role.tenant_id), actor, _role(role), tenant_ids=(role.tenant_id,))


def role_updated(role, actor: Actor, diff: dict, description_changed: bool) -> Event:
    """diff: {"added": [...], "removed": [...]} permissions."""
    return event(RoleUpdated(name=role.name, permissions_added=diff["added"], permissions_removed=diff["removed"],
                             description=role.description if description_changed else None,
                             tenant_id=role.tenant_id), actor, _role(role), tenant_ids=(role.tenant_id,))


def role_deleted(role, actor: Actor) -> Event:
    return event(RoleDeleted(name=role.name, permissions=sorted(role.permissions), tenant_id=role.tenant_id),
                 actor, _role(role), tenant_ids=(role.tenant_id,))


def role_assigned(user_id: str, username: str | None, tenant_id: str, role: str, actor: Actor,
                  previous: str | None = None, scope: dict | None = None) -> Event:
    return event(RoleAssigned(user_id=user_id, role=role, previous_role=previous, tenant_id=tenant_id,
                              scope=scope or {}), actor, Resource("user", user_id, username), tenant_ids=(tenant_id,))


def role_unassigned(user_id: str, username: str | None, tenant_id: str, role: str, actor: Actor) -> Event:
    return event(RoleUnassigned(user_id=user_id, role=role, tenant_id=tenant_id), actor,
                 Resource("user", user_id, username), tenant_ids=(tenant_id,))


def _group(group) -> Resource:
    return Resource("group", group.id, group.cn)


def _group_fields(group) -> dict:
    return {"cn": group.cn, "gid_number": group.gid_number, "description": group.description,
            "is_admin": group.is_admin, "tenant_id": group.tenant_id}


# A group's events are its tenant's (envelope tenant_ids): another tenant's audit view never shows
# them. A platform-wide group's (tenant_id None) are the platform's.


def group_created(group, actor: Actor) -> Event:
    return event(GroupCreated(**_group_fields(group)), actor, _group(group), tenant_ids=(group.tenant_id,))


def group_updated(group, actor: Actor, changes: dict) -> Event:
    """changes: field -> {"from": old, "to": new}."""
    return event(GroupUpdated(**_group_fields(group), changes=changes), actor, _group(group),
                 tenant_ids=(group.tenant_id,))


def group_deleted(group, actor: Actor, members: int) -> Event:
    return event(GroupDeleted(**_group_fields(group), members=members), actor, _group(group),
                 tenant_ids=(group.tenant_id,))


def _membership(group, user_id: str, username: str | None) -> dict:
    return {"group": group.cn, "gid_number": group.gid_number, "is_admin": group.is_admin,
            "tenant_id": group.tenant_id, "user_id": user_id, "username": username}


def member_added(group, user_id: str, username: str | None, actor: Actor) -> Event:
    return event(MemberAdded(**_membership(group, user_id, username)), actor, _group(group),
                 tenant_ids=(group.tenant_id,))


def member_removed(group, user_id: str, username: str | None, actor: Actor) -> Event:
    return event(MemberRemoved(**_membership(group, user_id, username)), actor, _group(group),
                 tenant_ids=(group.tenant_id,))


def authorization_denied(actor: Actor, permission: str, tenant_id: str, route: str | None) -> Event:
    return event(AuthorizationDenied(permission=permission, route=route, tenant_id=tenant_id), actor,
                 Resource("permission", permission, permission), outcome="failure", tenant_ids=(tenant_id,))
