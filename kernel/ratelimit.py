"""Per-actor fixed-window counters in a service's own database, for the limits on the accepted
global-uniqueness exceptions that are not identity's (docs/security.md: a refused duplicate group
name or GID, or connection name, tells that it exists somewhere; each attempt counts, so probing for
names is bounded), and on proxmox_sync's certificate fetches (a TLS handshake with any address an
administrator types: probing the network is bounded too). identity keeps its own mail and sign-up
limits (services/identity/limits.py) on the same windows and upsert (`window_bounds`, `add_to_window`).

A service declares its table with `counter_table(metadata, "<service>_rate_counters")` in storage.py
(and a migration), and calls `count_attempt` at the top of the use case, before the name is looked at.
Windows are fixed, aligned on the Unix epoch, `GATEHOUSE_RATE_LIMIT_WINDOW` seconds long, as identity's.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kernel.envelope import Actor, utc_now
from kernel.errors import TooManyRequests

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
RATE_LIMITED = "rate_limited"


def counter_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """How many attempts one key made in one window (the shape of identity's identity_rate_counters)."""
    return sa.Table(name, metadata,
                    sa.Column("key", sa.String(300), primary_key=True),
                    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
                    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
                    sa.Column("count", sa.Integer, nullable=False))


def window_bounds(now: datetime, window_seconds: int) -> tuple[datetime, datetime]:
    """The fixed window holding `now`: [start, end)."""
    elapsed = (now - EPOCH).total_seconds()
    start = EPOCH + timedelta(seconds=math.floor(elapsed / window_seconds) * window_seconds)
    return start, start + timedelta(seconds=window_seconds)


def take(session, table: sa.Table, key: str, now: datetime, window_seconds: int, units: int = 1) -> int:
    """Counts `units` for `key` in the window holding `now` (one upsert: concurrent requests of any
    instance queue on the row) and returns the window's count; ended windows of every key go."""
    start, end = window_bounds(now, window_seconds)
    count = add_to_window(session, table, key, start, end, units)
    session.execute(sa.delete(table).where(table.c.expires_at <= now))
    return count


def add_to_window(session, table: sa.Table, key: str, start: datetime, end: datetime, units: int) -> int:
    """Adds `units` to `key`'s count in the window [start, end) in one upsert (concurrent requests of
    any instance queue on the row); returns the count with them. Ended windows are the caller's to drop."""
    insert = (postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)
    return session.execute(
        insert.values(key=key, window_start=start, expires_at=end, count=units)
        .on_conflict_do_update(index_elements=[table.c.key, table.c.window_start],
                               set_={"count": table.c.count + units})
        .returning(table.c.count)).scalar_one()


def count_attempt(uow, table: sa.Table, limit: str, actor: Actor | dict, maximum: int, window_seconds: int,
                  message: str) -> None:
    """Counts one attempt of the actor under `limit` in its own committed transaction (a refused or
    conflicting attempt counts too: that is what a probe makes). Beyond `maximum` in the window:
    429 `rate_limited` (details: limit, retry_after). `maximum` 0: no limit; the operator CLI is not counted.
    `uow`: a unit of work not yet entered."""
    actor = actor if isinstance(actor, Actor) else Actor.from_dict(actor)
    if maximum <= 0 or actor.is_operator:
        return
    now = utc_now()
    with uow:
        count = take(uow.session, table, f"{limit}:{actor.user_id or actor.username or 'unknown'}", now,
                     window_seconds)
        uow.commit()
    if count > maximum:
        wait = max(1, math.ceil((window_bounds(now, window_seconds)[1] - now).total_seconds()))
        raise TooManyRequests(f"{message} Try again later.", code=RATE_LIMITED,
                              details={"limit": limit, "retry_after": wait}, retry_after=wait)
