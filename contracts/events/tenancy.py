"""tenancy's events: their types and payloads.

rbac assigns the role of user_assigned_to_tenant, takes it away on user_removed_from_tenant
and drops a deleted tenant's assignments and roles on tenant_deleted. No event carries a
connection's secret: `auth_configured` says one is stored. audit records every event.
"""
from __future__ import annotations

from contracts.events import Payload, key, payload

MULTI_TENANCY_ENABLED = "tenancy.multi_tenancy_enabled"
MULTI_TENANCY_DISABLED = "tenancy.multi_tenancy_disabled"
TENANT_CREATED = "tenancy.tenant_created"
TENANT_UPDATED = "tenancy.tenant_updated"
TENANT_DELETED = "tenancy.tenant_deleted"
CONNECTION_CREATED = "tenancy.connection_created"
CONNECTION_UPDATED = "tenancy.connection_updated"
CONNECTION_REASSIGNED = "tenancy.connection_reassigned"
CONNECTION_DELETED = "tenancy.connection_deleted"
USER_ASSIGNED_TO_TENANT = "tenancy.user_assigned_to_tenant"
USER_REMOVED_FROM_TENANT = "tenancy.user_removed_from_tenant"

ALL = (MULTI_TENANCY_ENABLED, MULTI_TENANCY_DISABLED, TENANT_CREATED, TENANT_UPDATED, TENANT_DELETED,
       CONNECTION_CREATED, CONNECTION_UPDATED, CONNECTION_REASSIGNED, CONNECTION_DELETED,
       USER_ASSIGNED_TO_TENANT, USER_REMOVED_FROM_TENANT)

# Why a membership ended (data.reason of user_removed_from_tenant).
REMOVED, TENANT_GONE, USER_GONE = "removed", "tenant_deleted", "user_removed"


# --- the switch ---------------------------------------------------------------------------

@payload(MULTI_TENANCY_ENABLED, "tenancy")
class MultiTenancyEnabled(Payload):
    """Everything that existed now lives in the default tenant: default_tenant {connections, users}
    says how much. Subscribers: proxmox_sync."""

    default_tenant: dict = key("default_tenant", default_factory=dict)


@payload(MULTI_TENANCY_DISABLED, "tenancy")
class MultiTenancyDisabled(Payload):
    """Subscribers: proxmox_sync."""


# --- tenants ---------------------------------------------------------------------------------

@payload(TENANT_CREATED, "tenancy")
class TenantCreated(Payload):
    """Subscribers: none (audit only)."""

    name: str | None = None
    description: str | None = None


@payload(TENANT_UPDATED, "tenancy")
class TenantUpdated(Payload):
    """changes: field -> {"from", "to"}. Subscribers: none (audit only)."""

    name: str | None = None
    changes: dict = key("changes", default_factory=dict)


@payload(TENANT_DELETED, "tenancy")
class TenantDeleted(Payload):
    """rbac drops the tenant's role assignments and custom roles on it; the gateway's session
    cache drops every decision. Subscribers: rbac, gateway session cache."""

    name: str | None = None
    members: int | None = None


# --- connections -----------------------------------------------------------------------------

@payload(CONNECTION_CREATED, "tenancy")
class ConnectionCreated(Payload):
    """A connection, everything but its secret. Subscribers: proxmox_sync."""

    name: str | None = None
    url: str | None = None
    tenant_id: str | None = None
    verify_tls: bool | None = None
    ca_pinned: bool = False
    fingerprint: str | None = None
    auth_method: str | None = None
    login: str | None = None
    realm: str | None = None
    auth_configured: bool = False


@payload(CONNECTION_UPDATED, "tenancy")
class ConnectionUpdated(Payload):
    """changes: field -> {"from", "to"} for fields shown in events; fields: every field that
    changed, the stored secret included (by name only: "auth_secret"). Subscribers: proxmox_sync."""

    name: str | None = None
    changes: dict = key("changes", default_factory=dict)
    fields: list = key("fields", default_factory=list)


@payload(CONNECTION_REASSIGNED, "tenancy")
class ConnectionReassigned(Payload):
    """The connection moved from tenant `from` to tenant `to`. Subscribers: proxmox_sync."""

    name: str | None = None
    from_: str | None = key("from", default=None)
    to: str


@payload(CONNECTION_DELETED, "tenancy")
class ConnectionDeleted(Payload):
    """The connection as it was, everything but its secret. Subscribers: proxmox_sync."""

    name: str | None = None
    url: str | None = None
    tenant_id: str | None = None
    verify_tls: bool | None = None
    ca_pinned: bool = False
    fingerprint: str | None = None
    auth_method: str | None = None
    login: str | None = None
    realm: str | None = None
    auth_configured: bool = False


# --- memberships -------------------------------------------------------------------------------

@payload(USER_ASSIGNED_TO_TENANT, "tenancy")
class UserAssignedToTenant(Payload):
    """rbac gives the user `role` in the tenant when one is named. Shown in that tenant's audit
    view only. Subscribers: identity (memberships), rbac, proxmox_sync, gateway session cache."""

    user_id: str
    username: str | None = None
    tenant_id: str
    role: str | None = None
    is_default: bool = False
    already_member: bool = False


@payload(USER_REMOVED_FROM_TENANT, "tenancy")
class UserRemovedFromTenant(Payload):
    """rbac takes the user's role in the tenant away; reason: removed, tenant_deleted or user_removed.
    Subscribers: identity (memberships), rbac, proxmox_sync, gateway session cache."""

    user_id: str
    username: str | None = None
    tenant_id: str
    reason: str | None = None
