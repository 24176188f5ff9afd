"""Every event tenancy publishes, in one place.

rbac assigns the role of user_assigned_to_tenant, takes it away on user_removed_from_tenant
and drops a deleted tenant's assignments and roles on tenant_deleted. No event carries a
connection's secret: `auth_configured` says one is stored.
"""
from __future__ import annotations

from kernel import DEFAULT_TENANT_ID
from kernel.envelope import Actor, Event, Resource

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


def _event(type_: str, actor: Actor, resource: Resource, data: dict, tenant_ids) -> Event:
    return Event(type=type_, source="tenancy", category="tenancy", actor=actor, resource=resource, data=data,
                 tenant_ids=tuple(tenant_ids))


# --- the switch ---------------------------------------------------------------------------

_SWITCH = Resource("tenancy", "multi_tenancy", "multi-tenancy")


def multi_tenancy_enabled(actor: Actor, default_connections: int, default_users: int) -> Event:
    """Everything that existed now lives in the default tenant: its counts say how much."""
    return _event(MULTI_TENANCY_ENABLED, actor, _SWITCH,
                  {"default_tenant": {"connections": default_connections, "users": default_users}},
                  (DEFAULT_TENANT_ID,))


def multi_tenancy_disabled(actor: Actor) -> Event:
    return _event(MULTI_TENANCY_DISABLED, actor, _SWITCH, {}, (DEFAULT_TENANT_ID,))


# --- tenants ---------------------------------------------------------------------------------


def _tenant(tenant) -> Resource:
    return Resource("tenant", tenant.id, tenant.name)


def tenant_created(tenant, actor: Actor) -> Event:
    return _event(TENANT_CREATED, actor, _tenant(tenant), {"name": tenant.name, "description": tenant.description},
                  (tenant.id,))


def tenant_updated(tenant, actor: Actor, changes: dict) -> Event:
    """changes: field -> {"from", "to"}."""
    return _event(TENANT_UPDATED, actor, _tenant(tenant), {"name": tenant.name, "changes": changes}, (tenant.id,))


def tenant_deleted(tenant, actor: Actor, members: int) -> Event:
    """rbac drops the tenant's role assignments and custom roles on it."""
    return _event(TENANT_DELETED, actor, _tenant(tenant), {"name": tenant.name, "members": members}, (tenant.id,))


# --- connections -----------------------------------------------------------------------------


def _connection(connection) -> Resource:
    return Resource("connection", connection.id, connection.name)


def connection_fields(connection) -> dict:
    """What events tell of a connection: everything but the secret."""
    return {"name": connection.name, "url": connection.url, "tenant_id": connection.tenant_id,
            "verify_tls": connection.verify_tls, "ca_pinned": bool(connection.ca_pem),
            "fingerprint": connection.fingerprint, "auth_method": connection.auth_method, "login": connection.login,
            "realm": connection.realm, "auth_configured": bool(connection.secret_sealed)}


def connection_created(connection, actor: Actor) -> Event:
    return _event(CONNECTION_CREATED, actor, _connection(connection), connection_fields(connection),
                  (connection.tenant_id,))


def connection_updated(connection, actor: Actor, changes: dict, fields: list[str]) -> Event:
    """changes: field -> {"from", "to"} for fields shown in events; fields: every field that
    changed, the stored secret included (by name only: "auth_secret")."""
    return _event(CONNECTION_UPDATED, actor, _connection(connection),
                  {"name": connection.name, "changes": changes, "fields": fields}, (connection.tenant_id,))


def connection_reassigned(connection, actor: Actor, from_tenant: str, to_tenant: str) -> Event:
    return _event(CONNECTION_REASSIGNED, actor, _connection(connection),
                  {"name": connection.name, "from": from_tenant, "to": to_tenant}, (from_tenant, to_tenant))


def connection_deleted(connection, actor: Actor) -> Event:
    return _event(CONNECTION_DELETED, actor, _connection(connection), connection_fields(connection),
                  (connection.tenant_id,))


# --- memberships -------------------------------------------------------------------------------


def _user(user_id: str, username: str | None) -> Resource:
    return Resource("user", user_id, username)


def user_assigned_to_tenant(membership, actor: Actor, role: str | None, already_member: bool) -> Event:
    """rbac gives the user `role` in the tenant when one is named. Shown in that tenant's audit
    view only: the user's other tenants must not learn of it."""
    return _event(USER_ASSIGNED_TO_TENANT, actor, _user(membership.user_id, membership.username),
                  {"user_id": membership.user_id, "username": membership.username, "tenant_id": membership.tenant_id,
                   "role": role, "is_default": membership.is_default, "already_member": already_member},
                  (membership.tenant_id,))


def user_removed_from_tenant(membership, actor: Actor, reason: str) -> Event:
    """rbac takes the user's role in the tenant away. Shown in that tenant's audit view only."""
    return _event(USER_REMOVED_FROM_TENANT, actor, _user(membership.user_id, membership.username),
                  {"user_id": membership.user_id, "username": membership.username, "tenant_id": membership.tenant_id,
                   "reason": reason}, (membership.tenant_id,))
