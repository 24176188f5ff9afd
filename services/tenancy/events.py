"""tenancy's event producers: each builds its payload (contracts.events.tenancy) from rows.

The event types and payload classes are tenancy's contract with its consumers
(contracts/events/tenancy.py); they are re-exported here for tenancy's own code. No event
carries a connection's secret: `auth_configured` says one is stored.
"""
from __future__ import annotations

from contracts.events import event
from contracts.events.tenancy import *  # noqa: F403 - the types and payloads, re-exported for tenancy's code
from contracts.events.tenancy import (ConnectionCreated, ConnectionDeleted, ConnectionReassigned, ConnectionUpdated,
                                      MultiTenancyDisabled, MultiTenancyEnabled, TenantCreated, TenantDeleted,
                                      TenantUpdated, UserAssignedToTenant, UserRemovedFromTenant)
from kernel import DEFAULT_TENANT_ID
from kernel.envelope import Actor, Event, Resource

# --- the switch ---------------------------------------------------------------------------

_SWITCH = Resource("tenancy", "multi_tenancy", "multi-tenancy")


def multi_tenancy_enabled(actor: Actor, default_connections: int, default_users: int) -> Event:
    """Everything that existed now lives in the default tenant: its counts say how much."""
    return event(MultiTenancyEnabled(default_tenant={"connections": default_connections, "users": default_users}),
                 actor, _SWITCH, tenant_ids=(DEFAULT_TENANT_ID,))


def multi_tenancy_disabled(actor: Actor) -> Event:
    return event(MultiTenancyDisabled(), actor, _SWITCH, tenant_ids=(DEFAULT_TENANT_ID,))


# --- tenants ---------------------------------------------------------------------------------


def _tenant(tenant) -> Resource:
    return Resource("tenant", tenant.id, tenant.name)


def tenant_created(tenant, actor: Actor) -> Event:
    return event(TenantCreated(name=tenant.name, description=tenant.description), actor, _tenant(tenant),
                 tenant_ids=(tenant.id,))


def tenant_updated(tenant, actor: Actor, changes: dict) -> Event:
    """changes: field -> {"from", "to"}."""
    return event(TenantUpdated(name=tenant.name, changes=changes), actor, _tenant(tenant), tenant_ids=(tenant.id,))


def tenant_deleted(tenant, actor: Actor, members: int) -> Event:
    """rbac drops the tenant's role assignments and custom roles on it."""
    return event(TenantDeleted(name=tenant.name, members=members), actor, _tenant(tenant), tenant_ids=(tenant.id,))


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
    return event(ConnectionCreated(**connection_fields(connection)), actor, _connection(connection),
                 tenant_ids=(connection.tenant_id,))


def connection_updated(connection, actor: Actor, changes: dict, fields: list[str]) -> Event:
    """changes: field -> {"from", "to"} for fields shown in events; fields: every field that
    changed, the stored secret included (by name only: "auth_secret")."""
    return event(ConnectionUpdated(name=connection.name, changes=changes, fields=fields), actor,
                 _connection(connection), tenant_ids=(connection.tenant_id,))


def connection_reassigned(connection, actor: Actor, from_tenant: str, to_tenant: str) -> Event:
    return event(ConnectionReassigned(name=connection.name, from_=from_tenant, to=to_tenant), actor,
                 _connection(connection), tenant_ids=(from_tenant, to_tenant))


def connection_deleted(connection, actor: Actor) -> Event:
    return event(ConnectionDeleted(**connection_fields(connection)), actor, _connection(connection),
                 tenant_ids=(connection.tenant_id,))


# --- memberships -------------------------------------------------------------------------------


def _user(user_id: str, username: str | None) -> Resource:
    return Resource("user", user_id, username)


def user_assigned_to_tenant(membership, actor: Actor, role: str | None, already_member: bool) -> Event:
    """rbac gives the user `role` in the tenant when one is named. Shown in that tenant's audit
    view only: the user's other tenants must not learn of it."""
    return event(UserAssignedToTenant(user_id=membership.user_id, username=membership.username,
                                      tenant_id=membership.tenant_id, role=role, is_default=membership.is_default,
                                      already_member=already_member),
                 actor, _user(membership.user_id, membership.username), tenant_ids=(membership.tenant_id,))


def user_removed_from_tenant(membership, actor: Actor, reason: str) -> Event:
    """rbac takes the user's role in the tenant away. Shown in that tenant's audit view only."""
    return event(UserRemovedFromTenant(user_id=membership.user_id, username=membership.username,
                                       tenant_id=membership.tenant_id, reason=reason),
                 actor, _user(membership.user_id, membership.username), tenant_ids=(membership.tenant_id,))
