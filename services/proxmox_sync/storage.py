"""proxmox_sync's tables: the directory's settings, the sync targets with their status and lease,
the work waiting for each target, and the Proxmox VE inventory."""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from kernel import ratelimit
from kernel.db import aware, iso, service_base, take_turns
from services.proxmox_sync.domain import connection_of
from services.proxmox_sync.inventory import GUESTS

Base = service_base("proxmox_sync")
metadata = Base.metadata

# Certificate fetches per administrator and window (GATEHOUSE_CERT_FETCHES_PER_ADMIN, certificates.py).
rate_counters = ratelimit.counter_table(metadata, "proxmox_sync_rate_counters")

# --- sync -------------------------------------------------------------------------------------

FULL = "full"  # the work subject of a full reconcile; others are "user:<id>"
PARKED_SHOWN = 100  # parked subjects a target's status lists (the count says how many there are)


class DirectorySettings(Base):
    """The LDAP directory Gatehouse writes to (one row). The bind password is sealed (SecretBox)."""

    __tablename__ = "proxmox_sync_directory"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(512))
    bind_dn: Mapped[str] = mapped_column(sa.String(512))
    password_sealed: Mapped[str] = mapped_column(sa.Text)
    base_dn: Mapped[str] = mapped_column(sa.String(512))
    start_tls: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    verify_tls: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    ca_pem: Mapped[str | None] = mapped_column(sa.Text)
    login_shell: Mapped[str] = mapped_column(sa.String(128), default="/bin/bash")
    # How Proxmox nodes reach the directory, when not at `url` (realms are made from it).
    realm_server: Mapped[str | None] = mapped_column(sa.String(255))
    # The read-only account Proxmox realms search as (the directory refuses anonymous searches).
    realm_bind_dn: Mapped[str | None] = mapped_column(sa.String(512))
    realm_bind_password_sealed: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class RealmSent(Base):
    """What Gatehouse last gave a connection's realm to bind with. Proxmox VE never answers a
    realm's password, so only this tells whether the current one is there: a keyed digest of
    it (SecretBox.keyed_digest), never the password."""

    __tablename__ = "proxmox_sync_realms"

    connection_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    realm: Mapped[str] = mapped_column(sa.String(64))
    bind_dn: Mapped[str | None] = mapped_column(sa.String(512))
    password_digest: Mapped[str | None] = mapped_column(sa.String(64))
    sent_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


def realm_sent(session: Session, connection_id: str) -> dict | None:
    row = session.get(RealmSent, connection_id)
    return None if row is None else {"realm": row.realm, "bind_dn": row.bind_dn, "password_digest": row.password_digest}


def record_realm_sent(session: Session, connection_id: str, realm: str, bind_dn: str | None,
                      password_digest: str | None, now: datetime) -> None:
    row = session.get(RealmSent, connection_id) or RealmSent(connection_id=connection_id)
    row.realm, row.bind_dn, row.password_digest, row.sent_at = realm, bind_dn, password_digest, now
    session.add(row)


class SyncTarget(Base):
    """One target (the directory, or a Proxmox connection): who works on it (a lease, so one
    instance at a time), and how its last run went."""

    __tablename__ = "proxmox_sync_targets"

    target: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(64))
    lease_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    running: Mapped[str | None] = mapped_column(sa.String(16))  # "full" | "targeted" while a run goes on
    progress_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    progress_total: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_mode: Mapped[str | None] = mapped_column(sa.String(16))
    last_duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    last_changes: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[dict | None] = mapped_column(sa.JSON)  # {"code", "message"} of the last failed run
    last_full_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    failing_since: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    conflicts: Mapped[list | None] = mapped_column(sa.JSON)  # objects left alone: not ours, in our way
    changes_total: Mapped[int] = mapped_column(sa.Integer, default=0)
    parked: Mapped[list["ParkedSubject"]] = relationship(
        "ParkedSubject", primaryjoin="SyncTarget.target == foreign(ParkedSubject.target)", viewonly=True,
        order_by="ParkedSubject.since", lazy="select")


SUBJECT_LENGTH = 255  # ParkedSubject.subject


class ParkedSubject(Base):
    """A user or group (or a foreign entry in the way) whose change the target refused for its data.

    The refusal is that subject's alone: the run goes on for everyone else and the target is not
    failing. The subject is tried again when an event marks it, on a sync request and on every
    full reconcile; a run that covers it without a refusal unparks it (engine.Engine)."""

    __tablename__ = "proxmox_sync_parked"

    target: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(SUBJECT_LENGTH), primary_key=True)  # user:<id>, group:<cn>, entry:<dn>...
    label: Mapped[str | None] = mapped_column(sa.String(512))  # what was refused: a DN, a Proxmox id
    error: Mapped[dict] = mapped_column(sa.JSON)  # {"code", "message"}: names and result codes, never a value
    attempts: Mapped[int] = mapped_column(sa.Integer, default=1)  # refusals in a row
    since: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    last_refused_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


def parked_key(subject: str) -> str:
    """A subject as a parked row holds it (an `entry:<dn>` may be longer than the column)."""
    return subject[:SUBJECT_LENGTH]


def park(session: Session, target: str, subject: str, label: str | None, error: dict, now: datetime) -> bool:
    """Records the refusal of `subject`'s change; whether it was not parked before."""
    subject = parked_key(subject)
    row = session.get(ParkedSubject, (target, subject))
    if row is None:
        session.add(ParkedSubject(target=target, subject=subject, label=(label or "")[:512] or None,
                                  error=error, attempts=1, since=now, last_refused_at=now))
        return True
    row.attempts += 1
    row.label, row.error, row.last_refused_at = (label or "")[:512] or None, error, now
    return False


def unpark(session: Session, target: str, subjects, keep=()) -> list[ParkedSubject]:
    """Drops the parked rows of `subjects` (None: all of the target's) but those in `keep`; the
    rows dropped."""
    query = sa.select(ParkedSubject).where(ParkedSubject.target == target)
    if keep:
        query = query.where(ParkedSubject.subject.not_in({parked_key(subject) for subject in keep}))
    if subjects is not None:
        subjects = list({parked_key(subject) for subject in subjects})
        if not subjects:
            return []
        query = query.where(ParkedSubject.subject.in_(subjects))
    rows = list(session.scalars(query))
    for row in rows:
        session.delete(row)
    return rows


def parked_subjects(session: Session, target: str) -> dict[str, ParkedSubject]:
    return {row.subject: row for row in session.scalars(sa.select(ParkedSubject).where(ParkedSubject.target == target))}


def public_parked(row: ParkedSubject) -> dict:
    return {"subject": row.subject, "label": row.label, "reason": row.error, "attempts": row.attempts,
            "since": iso(row.since), "last_refused_at": iso(row.last_refused_at)}


class SyncWork(Base):
    """Work a target owes: a full reconcile or one user's entries. Rows are merged (one per
    subject); `generation` grows with each new reason, so work that arrives while a run goes on
    is not lost when the run deletes what it did."""

    __tablename__ = "proxmox_sync_work"

    target: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(sa.Integer, default=1)
    hint: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # e.g. uid_number, former usernames
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


def ensure_target(session: Session, target: str, tenant_id: str | None) -> SyncTarget:
    take_turns(session, f"work:{target}")  # two events may add a new target at once
    row = session.get(SyncTarget, target)
    if row is None:
        row = SyncTarget(target=target, tenant_id=tenant_id, progress_done=0, progress_total=0, last_changes=0,
                         changes_total=0)
        session.add(row)
    elif tenant_id is not None:
        row.tenant_id = tenant_id
    return row


def enqueue(session: Session, target: str, subject: str, now: datetime, hint: dict | None = None) -> None:
    """Adds work (or a new reason for waiting work), due at once, unless the target is failing:
    then it waits for the target's next try, so events do not hammer a target that is down.

    Enqueues and the run's finish of one target take turns: read-then-write, two at once could
    both insert the row, or update one the run has just deleted."""
    take_turns(session, f"work:{target}")
    due = _next_try(session, target, now)
    row = session.get(SyncWork, (target, subject))
    if row is None:
        session.add(SyncWork(target=target, subject=subject, generation=1, hint=dict(hint or {}), attempts=0,
                             not_before=due, created_at=now))
        return
    row.generation += 1
    row.not_before = max(aware(row.not_before), due) if row.attempts else due
    merged = dict(row.hint or {})
    for key, value in (hint or {}).items():
        if isinstance(value, list):
            merged[key] = sorted(set(merged.get(key) or []) | set(value))
        else:
            merged[key] = value
    row.hint = merged


def _next_try(session: Session, target: str, now: datetime) -> datetime:
    state = session.get(SyncTarget, target)
    if state is None or state.failing_since is None:
        return now
    waiting = session.scalar(sa.select(sa.func.max(SyncWork.not_before)).where(SyncWork.target == target))
    return max(now, aware(waiting)) if waiting is not None else now


def forget_target(session: Session, target: str) -> None:
    session.execute(sa.delete(ParkedSubject).where(ParkedSubject.target == target))
    session.execute(sa.delete(SyncWork).where(SyncWork.target == target))
    session.execute(sa.delete(SyncTarget).where(SyncTarget.target == target))


def due_targets(session: Session, now: datetime) -> list[str]:
    return list(session.scalars(sa.select(SyncWork.target).where(SyncWork.not_before <= now).distinct()))


def take_lease(session: Session, target: str, owner: str, now: datetime, seconds: float) -> bool:
    """The target's lease for `owner`, if nobody else holds a live one. Its own transaction."""
    taken = session.execute(sa.update(SyncTarget).where(
        SyncTarget.target == target,
        sa.or_(SyncTarget.lease_owner.is_(None), SyncTarget.lease_owner == owner, SyncTarget.lease_until < now),
    ).values(lease_owner=owner, lease_until=now + timedelta(seconds=seconds)))
    return taken.rowcount == 1


def renew_lease(session: Session, target: str, owner: str, now: datetime, seconds: float) -> bool:
    renewed = session.execute(sa.update(SyncTarget).where(SyncTarget.target == target, SyncTarget.lease_owner == owner)
                              .values(lease_until=now + timedelta(seconds=seconds)))
    return renewed.rowcount == 1


def release_lease(session: Session, target: str, owner: str) -> None:
    session.execute(sa.update(SyncTarget).where(SyncTarget.target == target, SyncTarget.lease_owner == owner)
                    .values(lease_owner=None, lease_until=None))


def due_work(session: Session, target: str, now: datetime) -> list[SyncWork]:
    return list(session.scalars(sa.select(SyncWork).where(SyncWork.target == target, SyncWork.not_before <= now)
                                .order_by(SyncWork.created_at)))


def finish_work(session: Session, done: dict[tuple[str, str], int]) -> None:
    """Deletes the work done, unless a new reason arrived meanwhile (its generation moved on)."""
    for target in sorted({target for target, _ in done}):
        take_turns(session, f"work:{target}")
    for (target, subject), generation in done.items():
        session.execute(sa.delete(SyncWork).where(SyncWork.target == target, SyncWork.subject == subject,
                                                  SyncWork.generation == generation))


def postpone_work(session: Session, done: dict[tuple[str, str], int], now: datetime, backoff) -> None:
    """The work failed: try again later, later each time (backoff(attempts) seconds)."""
    for target in sorted({target for target, _ in done}):
        take_turns(session, f"work:{target}")
    for (target, subject), _ in done.items():
        row = session.get(SyncWork, (target, subject))
        if row is not None:
            row.attempts += 1
            row.not_before = now + timedelta(seconds=backoff(row.attempts))


def retry_now(session: Session, target: str, now: datetime) -> None:
    session.execute(sa.update(SyncWork).where(SyncWork.target == target, SyncWork.not_before > now)
                    .values(not_before=now))


def pending_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(sa.select(SyncWork.target, sa.func.count()).group_by(SyncWork.target)).all())


def next_attempts(session: Session) -> dict[str, datetime]:
    return dict(session.execute(sa.select(SyncWork.target, sa.func.min(SyncWork.not_before))
                                .group_by(SyncWork.target)).all())


def oldest_work(session: Session) -> dict[str, datetime]:
    """When each target's oldest waiting work arrived (its sync lag starts there)."""
    return {target: aware(created) for target, created in session.execute(
        sa.select(SyncWork.target, sa.func.min(SyncWork.created_at)).group_by(SyncWork.target)).all()}


def failing_targets(session: Session) -> dict[str, bool]:
    """Every known target → whether its last run failed."""
    return {target: failing is not None for target, failing in session.execute(
        sa.select(SyncTarget.target, SyncTarget.failing_since)).all()}


def public_target(row: SyncTarget, pending: int, next_attempt: datetime | None) -> dict:
    connection_id = connection_of(row.target)
    return {
        "target": row.target, "kind": "proxmox" if connection_id else "ldap", "connection_id": connection_id,
        "tenant_id": row.tenant_id,
        "state": "running" if row.running else ("failing" if row.failing_since else "idle"),
        "running": row.running,
        "progress": {"done": row.progress_done, "total": row.progress_total} if row.running else None,
        "last_run": None if row.last_started_at is None else {
            "started_at": iso(row.last_started_at), "finished_at": iso(row.last_finished_at),
            "mode": row.last_mode, "duration_ms": row.last_duration_ms, "changes": row.last_changes,
            "error": row.last_error},
        "last_full_at": iso(row.last_full_at), "failing_since": iso(row.failing_since),
        "conflicts": row.conflicts or [], "changes_total": row.changes_total,
        "pending": pending, "next_attempt_at": iso(next_attempt) if pending else None,
        # Subjects whose change the target refused for their data (the others' work went on).
        "parked": [public_parked(parked) for parked in row.parked[:PARKED_SHOWN]],
        "parked_count": len(row.parked),
    }


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
    """The connection's rows become `rows` (dicts of InventoryItem's columns): guests gone are gone.

    Replacements of one connection take turns (the poller's and a power action's refresh may
    meet): on PostgreSQL the second's delete would not see the first's new rows, and its inserts
    would clash with them."""
    take_turns(session, f"inventory:{connection_id}")
    forget_inventory(session, connection_id)
    session.add_all(InventoryItem(connection_id=connection_id, tenant_id=tenant_id, **row) for row in rows)


def guest_row(session: Session, tenant_id: str, connection_id: str, vmid: int) -> InventoryItem | None:
    return session.scalar(sa.select(InventoryItem).where(
        InventoryItem.tenant_id == tenant_id, InventoryItem.connection_id == connection_id,
        InventoryItem.kind.in_(GUESTS), InventoryItem.vmid == vmid))


def forget_inventory(session: Session, connection_id: str) -> None:
    session.execute(sa.delete(InventoryItem).where(InventoryItem.connection_id == connection_id))


_PER_CONNECTION = (InventoryItem, InventoryStatus, RealmSent)  # rows that go with their connection


def forget_connections(session: Session, connection_ids) -> None:
    """Drops the inventory, poll status and realm record of deleted connections."""
    ids = list(connection_ids)
    for table in _PER_CONNECTION:
        session.execute(sa.delete(table).where(table.connection_id.in_(ids)))


def forget_connections_but(session: Session, connection_ids) -> None:
    """Drops the inventory of every connection not in `connection_ids` (deleted meanwhile). Not
    the realm records: the poller's list may predate a connection made since, whose record must
    stay; a deleted connection's goes with its deletion event (forget_connections)."""
    keep = list(connection_ids)
    for table in (InventoryItem, InventoryStatus):
        session.execute(sa.delete(table).where(table.connection_id.not_in(keep)))


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
