"""audit's event producers (types and payloads: contracts/events/audit.py). They are recorded like any other event."""
from __future__ import annotations

from datetime import datetime

from contracts.events import event
from contracts.events.audit import ALL, FORWARDING_CHANGED, RECORDS_PURGED, ForwardingChanged, RecordsPurged
from kernel.db import iso
from kernel.envelope import SYSTEM, Actor, Event, Resource

__all__ = ["ALL", "FORWARDING_CHANGED", "RECORDS_PURGED", "TRAIL", "forwarding_changed", "records_purged"]


TRAIL = Resource("audit_trail", None, "audit trail")


def records_purged(count: int, through_seq: int, cutoff: datetime, retention_days: int) -> Event:
    """The retention job removed records 1..through_seq (those left before it) recorded before cutoff."""
    return event(RecordsPurged(count=count, through_seq=through_seq, cutoff=iso(cutoff),
                               retention_days=retention_days), SYSTEM, TRAIL)


def forwarding_changed(actor: Actor, config: dict, changed_fields: list[str]) -> Event:
    """The new forwarding configuration (no secret in it: a collector address) and what changed."""
    return event(ForwardingChanged(fields=changed_fields, config=config), actor,
                 Resource("setting", "audit-forwarding", "audit forwarding"))
