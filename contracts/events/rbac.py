"""rbac's events: their types and payloads.

identity keeps its user list's role column from role_assigned/role_unassigned;
proxmox_sync propagates memberships and roles; the gateway drops its cached
authorization decisions on any rbac event that can change a decision. audit records every event.
A group's events are its tenant's (envelope tenant_ids); a platform-wide group's (tenant_id None)
the platform's.
"""
from __future__ import annotations

from contracts.events import Payload, key, payload

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


# --- roles ------------------------------------------------------------------------

@payload(ROLE_CREATED, "rbac")
class RoleCreated(Payload):
    """A custom role. Subscribers: proxmox_sync, gateway session cache."""

    name: str | None = None
    description: str | None = None
    permissions: list = key("permissions", default_factory=list)
    tenant_id: str | None = None


@payload(ROLE_UPDATED, "rbac")
class RoleUpdated(Payload):
    """description: the new one when it changed, else None.

    Subscribers: proxmox_sync, gateway session cache.
    """

    name: str | None = None
    permissions_added: list = key("permissions_added", default_factory=list)
    permissions_removed: list = key("permissions_removed", default_factory=list)
    description: str | None = None
    tenant_id: str | None = None


@payload(ROLE_DELETED, "rbac")
class RoleDeleted(Payload):
    """Subscribers: proxmox_sync, gateway session cache."""

    name: str | None = None
    permissions: list = key("permissions", default_factory=list)
    tenant_id: str | None = None


@payload(ROLE_ASSIGNED, "rbac")
class RoleAssigned(Payload):
    """`user_id` holds `role` (was `previous_role`) in `tenant_id`, within `scope`.

    Subscribers: identity (the user list's role column), proxmox_sync, gateway session cache.
    """

    user_id: str
    role: str
    previous_role: str | None = None
    tenant_id: str
    scope: dict = key("scope", default_factory=dict)


@payload(ROLE_UNASSIGNED, "rbac")
class RoleUnassigned(Payload):
    """Subscribers: identity (the user list's role column), proxmox_sync, gateway session cache."""

    user_id: str
    role: str | None = None
    tenant_id: str


# --- groups -----------------------------------------------------------------------

@payload(GROUP_CREATED, "rbac")
class GroupCreated(Payload):
    """Subscribers: proxmox_sync, gateway session cache."""

    cn: str | None = None
    gid_number: int | None = None
    description: str | None = None
    is_admin: bool = False
    tenant_id: str | None = None


@payload(GROUP_UPDATED, "rbac")
class GroupUpdated(Payload):
    """changes: field -> {"from": old, "to": new}. Subscribers: proxmox_sync, gateway session cache."""

    cn: str | None = None
    gid_number: int | None = None
    description: str | None = None
    is_admin: bool = False
    tenant_id: str | None = None
    changes: dict = key("changes", default_factory=dict)


@payload(GROUP_DELETED, "rbac")
class GroupDeleted(Payload):
    """members: how many it had. Subscribers: proxmox_sync, gateway session cache."""

    cn: str | None = None
    gid_number: int | None = None
    description: str | None = None
    is_admin: bool = False
    tenant_id: str | None = None
    members: int | None = None


@payload(MEMBER_ADDED, "rbac")
class MemberAdded(Payload):
    """`user_id` joined group `group` (its cn). Subscribers: proxmox_sync, gateway session cache."""

    group: str | None = None
    gid_number: int | None = None
    is_admin: bool = False
    tenant_id: str | None = None
    user_id: str | None = None
    username: str | None = None


@payload(MEMBER_REMOVED, "rbac")
class MemberRemoved(Payload):
    """`user_id` left group `group` (its cn). Subscribers: proxmox_sync, gateway session cache."""

    group: str | None = None
    gid_number: int | None = None
    is_admin: bool = False
    tenant_id: str | None = None
    user_id: str | None = None
    username: str | None = None


@payload(AUTHORIZATION_DENIED, "rbac")
class AuthorizationDenied(Payload):
    """Subscribers: none (audit only)."""

    permission: str | None = None
    route: str | None = None
    tenant_id: str | None = None
