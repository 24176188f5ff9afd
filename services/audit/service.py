"""Audit: records every domain event of every service, serves them read-only."""
from __future__ import annotations

import eventlet
from nameko.dependency_providers import Config

from kernel.envelope import utc_now
from kernel.errors import ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.audit import deadletters, retention, storage
from services.audit.ingest import BatchIngest

MAX_PAGE = 200


class AuditService(ServiceBase):
    name = "audit"
    db = Database(storage.metadata)

    # --- recording: ingest, chain verification, retention, dead letters ---------

    # Queue audit.record, bound "#" on every service's exchange: event types added later
    # arrive with no change here. Batched appends, acked after commit (services/audit/ingest.py).
    ingest = BatchIngest()  # in a worker: its IngestStats
    config = Config()  # config["GATEHOUSE"]: the kernel Config (retention, broker)

    @rpc
    def health(self):
        return {**super().health(), "ingest": self.ingest.as_dict()}

    @rpc
    def verify(self):
        """Recompute the hash chain from its start (checkpoint or genesis) to the head, in one snapshot."""
        with self.db.engine.connect() as conn:
            storage.begin_snapshot(conn)
            # A million records take a while: between chunks, RPCs and the ingest go on.
            return storage.verify(conn, pause=lambda: eventlet.sleep(0))

    @rpc
    def dead_letters(self, limit=50):
        """The events the ingest parked: how many, and the first `limit` described."""
        limit = max(1, min(int(limit), MAX_PAGE))
        return deadletters.peek(self.config["GATEHOUSE"].amqp_uri, self.ingest.queue, limit)

    @retention.every("GATEHOUSE_AUDIT_PURGE_INTERVAL")
    def purge_expired(self):
        """Delete records older than the retention, oldest first, a bounded transaction at a time."""
        days = self.config["GATEHOUSE"].integer("GATEHOUSE_AUDIT_RETENTION_DAYS")
        while retention.purge_once(self.db, utc_now(), days) is not None:
            eventlet.sleep(0)  # the ingest writes between two purge transactions

    # --- reading: lists, search, export, forwarding to a SIEM --------------------

    @rpc
    def list_events(self, filters=None, limit=50, before=None):
        filters = {k: v for k, v in (filters or {}).items() if v is not None}
        if unknown := set(filters) - set(storage.FILTERS):
            raise ValidationFailed("Unknown audit filter.", details={name: "is not a filter" for name in unknown})
        limit = max(1, min(int(limit), MAX_PAGE))
        with self.db.unit_of_work() as uow:
            records = uow.session.scalars(storage.page_query(filters, limit + 1, before)).all()
        page = [storage.public_record(r) for r in records[:limit]]
        next_cursor = page[-1]["seq"] if len(records) > limit else None
        return {"items": page, "next_cursor": next_cursor}
