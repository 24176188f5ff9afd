"""The audit store: append-only records, one per event id."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import service_base
from services.audit import chain


Base = service_base("audit")
metadata = Base.metadata


class AuditRecord(Base):
    """One event, as it happened; append-only and hash-chained (services/audit/chain.py).

    `seq` is assigned by the single appender (chain head + 1), so the chain has no gaps.
    """
    __tablename__ = "audit_records"
    __table_args__ = (
        sa.Index("ix_audit_records_category_seq", "category", "seq"),
        sa.Index("ix_audit_records_action_seq", "action", "seq"),
        sa.Index("ix_audit_records_actor_seq", "actor_id", "seq"),
        sa.Index("ix_audit_records_resource_seq", "resource_type", "resource_id", "seq"),
        sa.Index("ix_audit_records_recorded_at", "recorded_at"),
        # Reading (services/audit/queries.py): filters by actor name alone and by resource id alone.
        sa.Index("ix_audit_records_actor_username_seq", "actor_username", "seq"),
        sa.Index("ix_audit_records_resource_id_seq", "resource_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True,
                                     autoincrement=False)
    event_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    type: Mapped[str] = mapped_column(sa.String(200))
    source: Mapped[str] = mapped_column(sa.String(64))
    category: Mapped[str] = mapped_column(sa.String(32))
    action: Mapped[str] = mapped_column(sa.String(128))
    outcome: Mapped[str] = mapped_column(sa.String(16))
    occurred_at: Mapped[str] = mapped_column(sa.String(40))  # as the event says, ISO-8601 UTC
    recorded_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    actor_id: Mapped[str | None] = mapped_column(sa.String(36))
    actor_username: Mapped[str | None] = mapped_column(sa.String(128))
    actor_display_name: Mapped[str | None] = mapped_column(sa.String(256))
    actor_email: Mapped[str | None] = mapped_column(sa.String(320))
    actor_ip: Mapped[str | None] = mapped_column(sa.String(45))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    resource_type: Mapped[str] = mapped_column(sa.String(64))
    resource_id: Mapped[str | None] = mapped_column(sa.String(64))
    resource_name: Mapped[str | None] = mapped_column(sa.String(256))
    tenant_ids: Mapped[list] = mapped_column(sa.JSON)
    data: Mapped[dict] = mapped_column(sa.JSON)
    # Lower-cased actor names/email, resource name and action: the free-text search target.
    search_text: Mapped[str] = mapped_column(sa.Text, default="")
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditRecordTenant(Base):
    """Which tenants' audit views show a record (derived from tenant_ids, for indexed tenant pages)."""
    __tablename__ = "audit_record_tenants"

    tenant_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True)


class ChainHead(Base):
    """The one append point: the last record's seq and hash (row-locked by the appender)."""
    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(sa.Integer)  # last appended seq; 0 when empty
    hash: Mapped[str] = mapped_column(sa.String(64))


class ChainCheckpoint(Base):
    """Where the chain starts after a retention purge: the first kept seq and the hash before it."""
    __tablename__ = "audit_chain_checkpoints"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    start_seq: Mapped[int] = mapped_column(sa.Integer)
    start_hash: Mapped[str] = mapped_column(sa.String(64))
    purged: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class ForwarderState(Base):
    """How far a forwarder (syslog) has sent the trail; it resumes from here after an outage."""
    __tablename__ = "audit_forwarders"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Setting(Base):
    """Audit settings an admin changes at run time (retention, syslog forwarding)."""
    __tablename__ = "audit_settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)  # JSON
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_by: Mapped[str | None] = mapped_column(sa.String(36))


def record_from_event(event, recorded_at: datetime) -> dict:
    """The stored columns of an event, before the appender gives it a seq and hashes."""
    actor = event.actor
    searchable = (actor.username, actor.display_name, actor.email, event.resource.name, event.action)
    return dict(
        event_id=event.id, type=event.type, source=event.source, category=event.category,
        action=event.action, outcome=event.outcome, occurred_at=event.occurred_at, recorded_at=recorded_at,
        actor_id=actor.user_id, actor_username=actor.username, actor_display_name=actor.display_name,
        actor_email=actor.email, actor_ip=actor.ip, request_id=actor.request_id,
        resource_type=event.resource.type, resource_id=event.resource.id, resource_name=event.resource.name,
        tenant_ids=sorted(event.tenant_ids), data=event.data,
        search_text=" ".join(part.lower() for part in searchable if part),
    )


def append(conn: sa.Connection, rows: list[dict]) -> int:
    """Chain and insert records (from `record_from_event`) in this transaction; returns how many.

    Event ids already stored (redeliveries) and repeated within `rows` are skipped. The
    head row is locked first, so concurrent appenders (several audit instances on
    PostgreSQL) take turns and the chain stays one sequence.
    """
    head = conn.execute(sa.select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == 1).with_for_update()).one()
    ids = list(dict.fromkeys(row["event_id"] for row in rows))
    stored = set(conn.scalars(sa.select(AuditRecord.event_id).where(AuditRecord.event_id.in_(ids))))
    seq, prev = head.seq, head.hash
    records, tenants, seen = [], [], set(stored)
    for row in rows:
        if row["event_id"] in seen:
            continue
        seen.add(row["event_id"])
        seq += 1
        record = {**row, "seq": seq, "prev_hash": prev}
        record["hash"] = prev = chain.record_hash(prev, chain.content_of(record))
        records.append(record)
        tenants.extend({"tenant_id": tenant, "seq": seq} for tenant in row["tenant_ids"])
    if records:
        conn.execute(sa.insert(AuditRecord), records)
        if tenants:
            conn.execute(sa.insert(AuditRecordTenant), tenants)
        conn.execute(sa.update(ChainHead).where(ChainHead.id == 1).values(seq=seq, hash=prev))
    return len(records)
