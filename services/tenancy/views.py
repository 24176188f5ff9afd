"""Tenancy's answers: the dicts its RPCs return to the gateway (and to rbac and proxmox_sync), made from rows."""
from __future__ import annotations

from kernel import DEFAULT_TENANT_ID
from kernel.db import iso
from services.tenancy.domain import LOGIN_FIELD
from services.tenancy.storage import Connection, Membership, Tenant, TenancyState


def status(state: TenancyState, tenant_count: int) -> dict:
    return {"enabled": state.enabled, "tenants": tenant_count, "changed_at": iso(state.changed_at),
            "changed_by": state.changed_by_name}


def public_tenant(tenant: Tenant, connection_count: int, user_count: int) -> dict:
    return {"id": tenant.id, "name": tenant.name, "description": tenant.description,
            "is_default": tenant.id == DEFAULT_TENANT_ID, "connection_count": connection_count,
            "user_count": user_count, "created_at": iso(tenant.created_at), "updated_at": iso(tenant.updated_at),
            "version": tenant.version}


def public_connection(connection: Connection) -> dict:
    """A connection as the API shows it: whether a secret is stored, never the secret."""
    return {"id": connection.id, "tenant_id": connection.tenant_id, "name": connection.name,
            "url": connection.url, "verify_tls": connection.verify_tls, "ca_pem": connection.ca_pem,
            "fingerprint": connection.fingerprint, "realm": connection.realm,
            "auth": {"method": connection.auth_method, LOGIN_FIELD[connection.auth_method]: connection.login,
                     "secret_set": bool(connection.secret_sealed)},
            "created_at": iso(connection.created_at), "updated_at": iso(connection.updated_at),
            "version": connection.version}


def connection_credentials(connection: Connection, secret: str) -> dict:
    """For proxmox_sync only: the connection with its secret (opened by the caller)."""
    return {**public_connection(connection), "auth_method": connection.auth_method, "login": connection.login,
            "secret": secret}


def public_membership(membership: Membership) -> dict:
    return {"tenant_id": membership.tenant_id, "user_id": membership.user_id, "username": membership.username,
            "is_default": membership.is_default, "created_at": iso(membership.created_at)}


def membership_of_user(membership: Membership, tenant: Tenant) -> dict:
    return {"tenant_id": tenant.id, "tenant_name": tenant.name, "is_default": membership.is_default}
