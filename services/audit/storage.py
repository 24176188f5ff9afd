"""The audit store: append-only records, one per event id."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import service_base


Base = service_base("audit")
metadata = Base.metadata


class AuditRecord(Base):
    __tablename__ = "audit_records"
    __table_args__ = (
        sa.Index("ix_audit_records_category_seq", "category", "seq"),
        sa.Index("ix_audit_records_actor_seq", "actor_id", "seq"),
        sa.Index("ix_audit_records_resource_seq", "resource_type", "resource_id", "seq"),
        sa.Index("ix_audit_records_tenant_seq", "tenant_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    type: Mapped[str] = mapped_column(sa.String(200))
    source: Mapped[str] = mapped_column(sa.String(64))
    category: Mapped[str] = mapped_column(sa.String(32))
    action: Mapped[str] = mapped_column(sa.String(128))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    occurred_at: Mapped[str] = mapped_column(sa.String(40))
    recorded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    actor_id: Mapped[str | None] = mapped_column(sa.String(36))
    actor_name: Mapped[str | None] = mapped_column(sa.String(128))
    actor_ip: Mapped[str | None] = mapped_column(sa.String(45))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    tenant_id: Mapped[str | None] = mapped_column(sa.String(36))
    resource_type: Mapped[str] = mapped_column(sa.String(64))
    resource_id: Mapped[str | None] = mapped_column(sa.String(64))
    resource_name: Mapped[str | None] = mapped_column(sa.String(256))
    data: Mapped[dict] = mapped_column(sa.JSON)


def record_from_event(event, recorded_at) -> dict:
    return dict(
        event_id=event.id, type=event.type, source=event.source, category=event.category,
        action=event.action, outcome=event.outcome, occurred_at=event.occurred_at, recorded_at=recorded_at,
        actor_id=event.actor.user_id, actor_name=event.actor.username, actor_ip=event.actor.ip,
        request_id=event.actor.request_id, tenant_id=event.tenant_ids[0] if event.tenant_ids else None, resource_type=event.resource.type,
        resource_id=event.resource.id, resource_name=event.resource.name, data=event.data,
    )


def public_record(record: AuditRecord) -> dict:
    return {
        "id": record.event_id, "seq": record.seq, "type": record.type, "source": record.source,
        "category": record.category, "action": record.action, "outcome": record.outcome,
        "occurred_at": record.occurred_at,
        "actor": {"user_id": record.actor_id, "username": record.actor_name, "ip": record.actor_ip},
        "request_id": record.request_id, "tenant_id": record.tenant_id,
        "resource": {"type": record.resource_type, "id": record.resource_id, "name": record.resource_name},
        "data": record.data,
    }


FILTERS = {
    "category": AuditRecord.category,
    "action": AuditRecord.action,
    "actor_id": AuditRecord.actor_id,
    "resource_type": AuditRecord.resource_type,
    "resource_id": AuditRecord.resource_id,
    "outcome": AuditRecord.outcome,
    "tenant_id": AuditRecord.tenant_id,
}


def page_query(filters: dict, limit: int, before: int | None):
    """Newest first; `before` is the seq cursor, stable while new records arrive."""
    query = sa.select(AuditRecord)
    for name, value in filters.items():
        query = query.where(FILTERS[name] == value)
    if before is not None:
        query = query.where(AuditRecord.seq < before)
    return query.order_by(AuditRecord.seq.desc()).limit(limit)
