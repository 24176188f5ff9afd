"""The audit store: append-only records, one per event id."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import aware, service_base
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


def begin_write(conn: sa.Connection) -> None:
    """Open `conn`'s transaction as the chain's writer (before any other statement on it).

    SQLite: BEGIN IMMEDIATE takes the file's write lock at once, so two processes on one
    file take turns instead of one failing when its read lock cannot be upgraded.
    PostgreSQL: nothing here; the head row's FOR UPDATE in append/purge serializes writers.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def begin_snapshot(conn: sa.Connection) -> None:
    """Make every read of `conn`'s next transaction see one moment (a long walk over the chain)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")  # the WAL snapshot is taken at the first read and kept until the end
    else:
        conn.execution_options(isolation_level="REPEATABLE READ")


def _lock_head(conn: sa.Connection):
    return conn.execute(sa.select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == 1).with_for_update()).one()


def append(conn: sa.Connection, rows: list[dict]) -> int:
    """Chain and insert records (from `record_from_event`) in this transaction; returns how many.

    Event ids already stored (redeliveries) and repeated within `rows` are skipped. The
    head row is locked first, so concurrent appenders (several audit instances on
    PostgreSQL) take turns and the chain stays one sequence.
    """
    head = _lock_head(conn)
    ids = list(dict.fromkeys(row["event_id"] for row in rows))
    stored = set(conn.scalars(sa.select(AuditRecord.event_id).where(AuditRecord.event_id.in_(ids))))
    records, tenants, (seq, prev) = chained(rows, head.seq, head.hash, skip=stored)
    if records:
        conn.execute(sa.insert(AuditRecord), records)
        if tenants:
            conn.execute(sa.insert(AuditRecordTenant), tenants)
        conn.execute(sa.update(ChainHead).where(ChainHead.id == 1).values(seq=seq, hash=prev))
    return len(records)


def chained(rows: list[dict], head_seq: int, head_hash: str, skip=frozenset()) -> tuple[list, list, tuple[int, str]]:
    """(records with seq, prev_hash and hash; their tenant index rows; the new head) for `rows`
    appended after the head, each event id once and none of `skip` (pure: no I/O)."""
    seq, prev = head_seq, head_hash
    records, tenants, seen = [], [], set(skip)
    for row in rows:
        if row["event_id"] in seen:
            continue
        seen.add(row["event_id"])
        seq += 1
        record = {**row, "seq": seq, "prev_hash": prev}
        record["hash"] = prev = chain.record_hash(prev, chain.content_of(record))
        records.append(record)
        tenants.extend({"tenant_id": tenant, "seq": seq} for tenant in row["tenant_ids"])
    return records, tenants, (seq, prev)


def chain_start(conn: sa.Connection) -> tuple[int, str]:
    """(first seq, hash before it) the chain is verified from: the latest purge checkpoint, else genesis."""
    checkpoint = conn.execute(sa.select(ChainCheckpoint.start_seq, ChainCheckpoint.start_hash)
                              .order_by(ChainCheckpoint.id.desc()).limit(1)).first()
    return (checkpoint.start_seq, checkpoint.start_hash) if checkpoint else (1, chain.GENESIS)


_CHAINED = [AuditRecord.__table__.c[name] for name in chain.CHAINED_FIELDS]


def chained_records(conn: sa.Connection, from_seq: int, chunk: int, pause=lambda: None):
    """(content, prev_hash, hash) of every record from `from_seq` on, in seq order, `chunk` rows per query."""
    after = from_seq - 1
    while True:
        rows = conn.execute(sa.select(*_CHAINED, AuditRecord.prev_hash, AuditRecord.hash)
                            .where(AuditRecord.seq > after).order_by(AuditRecord.seq).limit(chunk)).all()
        for row in rows:
            yield chain.content_of(row._mapping), row.prev_hash, row.hash
        if len(rows) < chunk:
            return
        after = rows[-1].seq
        pause()  # between queries: the caller may let other work run


def verify(conn: sa.Connection, chunk: int = 2000, pause=lambda: None) -> dict:
    """Recompute the chain from its start and compare its end with the head row.

    Run it in one snapshot (`begin_snapshot`) so appends and purges during the walk are not
    mistaken for breaks. first_break names the first record that does not follow; reason
    "head_mismatch" means the records end elsewhere than the head says (records removed
    from the end, added past it, or the head edited).
    """
    start_seq, start_hash = chain_start(conn)
    head = conn.execute(sa.select(ChainHead.seq, ChainHead.hash).where(ChainHead.id == 1)).one()
    walked = {"count": 0, "seq": start_seq - 1, "hash": start_hash, "event_id": None, "past_head": None}

    def walk():
        for content, prev_hash, stored_hash in chained_records(conn, start_seq, chunk, pause):
            walked.update(count=walked["count"] + 1, seq=content["seq"], hash=stored_hash,
                          event_id=content["event_id"])
            if content["seq"] == head.seq + 1:
                walked["past_head"] = content["event_id"]
            yield content, prev_hash, stored_hash

    broken = chain.first_break(start_hash, start_seq, walk())
    if broken is None and (walked["seq"], walked["hash"]) != (head.seq, head.hash):
        if walked["seq"] < head.seq:  # the head names records that are gone
            broken = chain.Break(walked["seq"] + 1, None, "head_mismatch")
        elif walked["seq"] > head.seq:
            broken = chain.Break(head.seq + 1, walked["past_head"], "head_mismatch")
        else:
            broken = chain.Break(head.seq, walked["event_id"], "head_mismatch")
    return {
        "valid": broken is None, "checked": walked["count"], "start_seq": start_seq, "head_seq": head.seq,
        "first_break": None if broken is None else {"seq": broken.seq, "event_id": broken.event_id,
                                                    "reason": broken.reason},
    }


def purge(conn: sa.Connection, cutoff: datetime, now: datetime, limit: int) -> dict | None:
    """Delete the oldest records recorded before `cutoff` (at most `limit`) and checkpoint the new start.

    Only a prefix of the chain goes: the first record that has not expired stops the purge,
    so the rest still verifies from the checkpoint (first kept seq, the hash before it).
    Holds the head lock (run `begin_write` first). Returns what was purged, or None.
    """
    head = _lock_head(conn)
    start_seq, _ = chain_start(conn)
    oldest = conn.execute(sa.select(AuditRecord.seq, AuditRecord.recorded_at).where(AuditRecord.seq >= start_seq)
                          .order_by(AuditRecord.seq).limit(limit)).all()
    first_kept = next((row.seq for row in oldest if aware(row.recorded_at) >= cutoff),
                      oldest[-1].seq + 1 if oldest else start_seq)
    if first_kept <= start_seq:
        return None
    start_hash = (head.hash if first_kept > head.seq
                  else conn.scalar(sa.select(AuditRecord.prev_hash).where(AuditRecord.seq == first_kept)))
    tenants = {tenant for tenant_ids in conn.scalars(sa.select(AuditRecord.tenant_ids)
                                                     .where(AuditRecord.seq < first_kept))
               for tenant in tenant_ids}
    if tenants:  # through the (tenant_id, seq) key: no scan of the whole index
        conn.execute(sa.delete(AuditRecordTenant).where(AuditRecordTenant.tenant_id.in_(tenants),
                                                        AuditRecordTenant.seq < first_kept))
    count = conn.execute(sa.delete(AuditRecord).where(AuditRecord.seq < first_kept)).rowcount
    conn.execute(sa.insert(ChainCheckpoint).values(start_seq=first_kept, start_hash=start_hash, purged=count,
                                                   created_at=now))
    return {"count": count, "through_seq": first_kept - 1, "start_seq": first_kept}

