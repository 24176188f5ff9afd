"""Tenancy's tables: the multi-tenancy switch, tenants, Proxmox VE connections and memberships.

The `default` tenant and the switch's row are written by the migration, so every
connection and membership always has a tenant.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from kernel import ratelimit
from kernel.db import service_base

Base = service_base("tenancy")
metadata = Base.metadata
# Attempts at a connection name per administrator and window (GATEHOUSE_CONNECTION_NAMES_PER_ADMIN).
rate_counters = ratelimit.counter_table(metadata, "tenancy_rate_counters")


class TenancyState(Base):
    """One row (id 1): whether multi-tenancy is on, and who switched it last."""

    __tablename__ = "tenancy_state"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    changed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    changed_by: Mapped[str | None] = mapped_column(sa.String(36))
    changed_by_name: Mapped[str | None] = mapped_column(sa.String(64))


class Tenant(Base):
    __tablename__ = "tenancy_tenants"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    # domain.name_key(name): names are unique whatever their case.
    name_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    description: Mapped[str] = mapped_column(sa.String(500), default="")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    version: Mapped[int] = mapped_column(sa.Integer, default=1)


class Connection(Base):
    """A Proxmox VE endpoint, owned by exactly one tenant."""

    __tablename__ = "tenancy_connections"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenancy_tenants.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    name_key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    url: Mapped[str] = mapped_column(sa.String(255))  # normalized: https://host:port
    verify_tls: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    ca_pem: Mapped[str | None] = mapped_column(sa.Text)
    fingerprint: Mapped[str | None] = mapped_column(sa.String(95))
    auth_method: Mapped[str] = mapped_column(sa.String(16))  # domain.TOKEN or domain.PASSWORD
    login: Mapped[str] = mapped_column(sa.String(160))  # the token id (user@realm!name) or user@realm
    # The token secret or password, encrypted with kernel.crypto.SecretBox; never leaves tenancy
    # but through connection_credentials (proxmox_sync).
    secret_sealed: Mapped[str] = mapped_column(sa.Text)
    realm: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    version: Mapped[int] = mapped_column(sa.Integer, default=1)


class Membership(Base):
    __tablename__ = "tenancy_memberships"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenancy_tenants.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, index=True)
    # Kept so lists and events name the member without asking identity.
    username: Mapped[str | None] = mapped_column(sa.String(64))
    # The tenant a session starts in when the user has several: one per user.
    is_default: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


# --- queries -------------------------------------------------------------------------------


def state(session: Session) -> TenancyState:
    return session.get(TenancyState, 1)


def tenant_count(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Tenant))


def tenant_by_name(session: Session, key: str) -> Tenant | None:
    return session.scalars(sa.select(Tenant).where(Tenant.name_key == key)).first()


def connection_by_name(session: Session, key: str) -> Connection | None:
    return session.scalars(sa.select(Connection).where(Connection.name_key == key)).first()


def counts(session: Session, column, tenant_ids=None) -> dict[str, int]:
    """Rows per tenant of Connection.tenant_id or Membership.tenant_id."""
    query = sa.select(column, sa.func.count()).group_by(column)
    if tenant_ids is not None:
        query = query.where(column.in_(tenant_ids))
    return dict(session.execute(query).all())


def memberships_of(session: Session, user_id: str, for_update: bool = False) -> list[tuple[Membership, Tenant]]:
    """The user's memberships with their tenants; for_update locks them (PostgreSQL) so that two
    concurrent changes cannot both think another membership remains."""
    query = sa.select(Membership, Tenant).join(Tenant, Tenant.id == Membership.tenant_id).where(
        Membership.user_id == user_id)
    if for_update:
        query = query.with_for_update(of=Membership)
    return list(session.execute(query).tuples())


def members(session: Session, tenant_id: str) -> list[Membership]:
    return list(session.scalars(sa.select(Membership).where(Membership.tenant_id == tenant_id)))

