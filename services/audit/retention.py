"""Retention: records older than GATEHOUSE_AUDIT_RETENTION_DAYS leave the store, oldest first.

A purge deletes a prefix of the chain and stores a checkpoint (first kept seq, the hash
before it) in the same transaction, so `verify` still proves the rest; each purge emits
`audit.records_purged`, which audit records like any other event.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from nameko.timer import Timer

from services.audit import events, storage

# Records deleted per transaction: a first purge of millions still lets the ingest write in between.
PURGE_BATCH = 10_000


def cutoff(now: datetime, retention_days: int) -> datetime:
    """Records recorded before this moment have expired."""
    return now - timedelta(days=retention_days)


def purge_once(db, now: datetime, retention_days: int, limit: int = PURGE_BATCH) -> dict | None:
    """One purge transaction: up to `limit` expired records, their checkpoint and event. None: nothing expired."""
    expiry = cutoff(now, retention_days)
    with db.unit_of_work() as uow:
        conn = uow.session.connection()
        storage.begin_write(conn)
        purged = storage.purge(conn, expiry, now, limit)
        if purged is None:
            return None
        uow.emit(events.records_purged(purged["count"], purged["through_seq"], expiry, retention_days))
        uow.commit()
    return purged


class ConfiguredTimer(Timer):
    """nameko's timer, its interval read from a setting when the service starts."""

    def __init__(self, setting: str, eager: bool = True, **kwargs):
        self.setting = setting
        super().__init__(interval=None, eager=eager, **kwargs)

    def setup(self):
        self.interval = self.container.config["GATEHOUSE"].number(self.setting)
        super().setup()


every = ConfiguredTimer.decorator
