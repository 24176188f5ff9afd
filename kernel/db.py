"""Per-service database: engine, unit of work, and the kernel's outbox/inbox tables.

A unit of work is one database transaction. State changes and the events that
describe them (`uow.emit`) commit together; the outbox relay publishes them after.
Rule for eventlet services on SQLite: never yield (RPC, tpool, publish) inside a
unit of work; sqlite's lock wait blocks the whole hub.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from kernel import failpoints
from kernel.envelope import Event, utc_now


def aware(moment: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands back naive ones, and we only store UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def iso(moment: datetime | None) -> str | None:
    """A stored time as the API shows it: ISO-8601 UTC to the second, with Z."""
    if moment is None:
        return None
    return aware(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def take_turns(session, key: str) -> None:
    """Writers of `key` in this transaction wait for each other's commit (PostgreSQL: an advisory
    lock held until the transaction ends, re-entrant; take several in one order). For
    read-then-write steps that two instances may run at once; SQLite lets one writer in at a
    time anyway."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))


def kernel_tables(metadata: sa.MetaData, service: str) -> tuple[sa.Table, sa.Table]:
    """Declare the outbox and inbox of `service` in its metadata (so Alembic sees them).

    Table names carry the service name so that services may share one PostgreSQL
    database if an operator insists; each service still owns its tables.
    """
    outbox = sa.Table(
        f"{service}_outbox", metadata,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("exchange", sa.String(100), nullable=False),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), index=True),
    )
    inbox = sa.Table(
        f"{service}_inbox", metadata,
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    return outbox, inbox


def service_base(service: str) -> type[DeclarativeBase]:
    """The declarative base of a service's models; its metadata already holds the outbox and inbox."""

    class Base(DeclarativeBase):
        metadata = sa.MetaData()

    kernel_tables(Base.metadata, service)
    return Base


def create_engine(url: str, pool_size: int = 5) -> sa.Engine:
    if url.startswith("sqlite"):
        # hide_parameters: an error message must never carry a password hash or an email into logs.
        engine = sa.create_engine(url, hide_parameters=True, connect_args={"timeout": 5, "check_same_thread": False})

        @sa_event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=pool_size,
                            max_overflow=pool_size)


class ServiceDatabase:
    """One service's database; usable with or without nameko (CLI, tests)."""

    def __init__(self, service: str, url: str, metadata: sa.MetaData, pool_size: int = 5):
        self.service = service
        self.engine = create_engine(url, pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.outbox = metadata.tables[f"{service}_outbox"]
        self.inbox = metadata.tables[f"{service}_inbox"]
        self.committed = threading.Event()  # wakes the relay; green under eventlet

    def unit_of_work(self) -> "UnitOfWork":
        return UnitOfWork(self)

    def outbox_backlog(self) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(self.outbox).where(self.outbox.c.published_at.is_(None))
            return conn.execute(query).scalar_one()

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    def __init__(self, db: ServiceDatabase):
        self.db = db
        self.session: Session | None = None
        self.events: list[Event] = []

    def __enter__(self) -> "UnitOfWork":
        self.session = self.db.sessions()
        return self

    def __exit__(self, *exc_info) -> None:
        # close() rolls back whatever was not committed and detaches loaded objects
        # without expiring them, so callers can still read what they loaded.
        self.session.close()

    def emit(self, *events: Event) -> None:
        for event in events:
            self.session.execute(sa.insert(self.db.outbox).values(
                event_id=event.id, exchange=event.exchange, routing_key=event.type,
                body=json.dumps(event.to_dict(), separators=(",", ":")), created_at=utc_now(),
            ))
            self.events.append(event)

    def claim(self, event_id: str, consumer: str) -> bool:
        """Record that `consumer` handles `event_id` in this transaction.

        False when it was handled before (a redelivery): the caller skips it.
        """
        inbox = self.db.inbox
        seen = self.session.execute(sa.select(inbox.c.event_id).where(
            inbox.c.consumer == consumer, inbox.c.event_id == event_id)).first()
        if seen:
            return False
        try:
            self.session.execute(sa.insert(inbox).values(consumer=consumer, event_id=event_id, processed_at=utc_now()))
        except IntegrityError:  # a concurrent redelivery claimed it first
            self.session.rollback()
            return False
        return True

    def commit(self) -> None:
        self.session.commit()
        for event in self.events:
            failpoints.hit("outbox.after_commit", event.type)
        if self.events:
            self.events = []
            self.db.committed.set()
