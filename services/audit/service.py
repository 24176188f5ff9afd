"""Audit: records every domain event of every service, serves them read-only."""
from __future__ import annotations

from kernel import SERVICES
from kernel.consumer import on_event
from kernel.envelope import utc_now
from kernel.errors import ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.audit import storage

MAX_PAGE = 200


class AuditService(ServiceBase):
    name = "audit"
    db = Database(storage.metadata)

    # --- recording: ingest, chain verification, retention, dead letters ---------

    # Binds "#" on every service's exchange: event types added later arrive with no change here.
    @on_event(*SERVICES, dedupe=False)
    def record(self, event):
        """Append the event once; a redelivered event id is ignored (the id is unique)."""
        with self.db.engine.begin() as conn:
            storage.append(conn, [storage.record_from_event(event, utc_now())])

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
