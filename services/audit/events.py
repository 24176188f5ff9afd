"""Every event audit publishes, in one place. They are recorded like any other event."""
from __future__ import annotations

from datetime import datetime

from kernel.db import iso
from kernel.envelope import SYSTEM, Actor, Event, Resource

# --- recording: retention ---------------------------------------------------------

RECORDS_PURGED = "audit.records_purged"

TRAIL = Resource("audit_trail", None, "audit trail")


def records_purged(count: int, through_seq: int, cutoff: datetime, retention_days: int) -> Event:
    """The retention job removed records 1..through_seq (those left before it) recorded before cutoff."""
    return Event(type=RECORDS_PURGED, source="audit", category="audit", actor=SYSTEM, resource=TRAIL,
                 data={"count": count, "through_seq": through_seq, "cutoff": iso(cutoff),
                       "retention_days": retention_days})


# --- reading: forwarding to a SIEM ---------------------------------------------------

FORWARDING_CHANGED = "audit.forwarding_changed"


def forwarding_changed(actor: Actor, config: dict, changed_fields: list[str]) -> Event:
    """The new forwarding configuration (no secret in it: a collector address) and what changed."""
    return Event(type=FORWARDING_CHANGED, source="audit", category="settings", actor=actor,
                 resource=Resource("setting", "audit-forwarding", "audit forwarding"),
                 data={"fields": changed_fields, **config})


ALL = (RECORDS_PURGED, FORWARDING_CHANGED)
