"""proxmox_sync's tables: the kernel's outbox and inbox, and the Proxmox VE inventory."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from kernel.db import service_base
from services.proxmox_sync.inventory import GUESTS

Base = service_base("proxmox_sync")
metadata = Base.metadata


# --- inventory -----------------------------------------------------------------------------------


class InventoryItem(Base):
    """One node, guest (qemu VM or lxc container) or storage of a connection, as its last
    successful poll saw it; a poll replaces all rows of its connection."""

    __tablename__ = "proxmox_sync_inventory"
    __table_args__ = (
        sa.UniqueConstraint("connection_id", "kind", "key", name="uq_proxmox_sync_inventory_item"),
        sa.Index("ix_proxmox_sync_inventory_tenant_kind", "tenant_id", "kind"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(sa.String(36))
    tenant_id: Mapped[str] = mapped_column(sa.String(36))
    kind: Mapped[str] = mapped_column(sa.String(16))  # inventory.NODE, QEMU, LXC or STORAGE
    key: Mapped[str] = mapped_column(sa.String(200))  # node name, VMID, or "<node>/<storage>"
    node: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    vmid: Mapped[int | None] = mapped_column(sa.Integer)
    status: Mapped[str | None] = mapped_column(sa.String(32))
    data: Mapped[dict] = mapped_column(sa.JSON)  # the other figures of /cluster/resources
    seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class InventoryStatus(Base):
    """How the polls of one connection went: a failure keeps the rows of the last success."""

    __tablename__ = "proxmox_sync_inventory_status"

    connection_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    polled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    succeeded_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    error_message: Mapped[str | None] = mapped_column(sa.String(500))


def inventory_rows(session: Session, tenant_id: str, kinds, connection_id: str | None = None) -> list[InventoryItem]:
    query = sa.select(InventoryItem).where(InventoryItem.tenant_id == tenant_id, InventoryItem.kind.in_(kinds))
    if connection_id is not None:
        query = query.where(InventoryItem.connection_id == connection_id)
    return list(session.scalars(query.order_by(InventoryItem.connection_id, InventoryItem.node,
                                               InventoryItem.vmid, InventoryItem.key)))


def replace_inventory(session: Session, connection_id: str, tenant_id: str, rows: list[dict]) -> None:
    """The connection's rows become `rows` (dicts of InventoryItem's columns): guests gone are gone."""
    forget_inventory(session, connection_id)
    session.add_all(InventoryItem(connection_id=connection_id, tenant_id=tenant_id, **row) for row in rows)


def guest_row(session: Session, tenant_id: str, connection_id: str, vmid: int) -> InventoryItem | None:
    return session.scalar(sa.select(InventoryItem).where(
        InventoryItem.tenant_id == tenant_id, InventoryItem.connection_id == connection_id,
        InventoryItem.kind.in_(GUESTS), InventoryItem.vmid == vmid))


def forget_inventory(session: Session, connection_id: str) -> None:
    session.execute(sa.delete(InventoryItem).where(InventoryItem.connection_id == connection_id))


def forget_connections(session: Session, connection_ids) -> None:
    """Drops the inventory and poll status of deleted connections."""
    ids = list(connection_ids)
    session.execute(sa.delete(InventoryItem).where(InventoryItem.connection_id.in_(ids)))
    session.execute(sa.delete(InventoryStatus).where(InventoryStatus.connection_id.in_(ids)))


def forget_connections_but(session: Session, connection_ids) -> None:
    """Drops what is known of every connection not in `connection_ids` (deleted meanwhile)."""
    keep = list(connection_ids)
    session.execute(sa.delete(InventoryItem).where(InventoryItem.connection_id.not_in(keep)))
    session.execute(sa.delete(InventoryStatus).where(InventoryStatus.connection_id.not_in(keep)))


def record_poll(session: Session, connection_id: str, tenant_id: str, when: datetime,
                error: dict | None = None) -> InventoryStatus:
    status = session.get(InventoryStatus, connection_id) or InventoryStatus(connection_id=connection_id)
    status.tenant_id, status.polled_at = tenant_id, when
    if error is None:
        status.succeeded_at, status.error_code, status.error_message = when, None, None
    else:
        status.error_code, status.error_message = error["code"], error["message"][:500]
    session.add(status)
    return status


def move_connection(session: Session, connection_id: str, tenant_id: str) -> None:
    """A reassigned connection's inventory belongs to its new tenant at once."""
    for table in (InventoryItem, InventoryStatus):
        session.execute(sa.update(table).where(table.connection_id == connection_id).values(tenant_id=tenant_id))


def inventory_statuses(session: Session, tenant_id: str) -> list[InventoryStatus]:
    return list(session.scalars(sa.select(InventoryStatus).where(InventoryStatus.tenant_id == tenant_id)
                                .order_by(InventoryStatus.connection_id)))
