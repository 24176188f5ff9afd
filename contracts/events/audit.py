"""audit's events: their types and payloads. They are recorded like any other event."""
from __future__ import annotations

from contracts.events import Payload, key, payload

# --- recording: retention ---------------------------------------------------------
RECORDS_PURGED = "audit.records_purged"

# --- reading: forwarding to a SIEM ---------------------------------------------------
FORWARDING_CHANGED = "audit.forwarding_changed"

ALL = (RECORDS_PURGED, FORWARDING_CHANGED)


@payload(RECORDS_PURGED, "audit")
class RecordsPurged(Payload):
    """The retention job removed records 1..through_seq recorded before cutoff.

    Subscribers: none (audit only).
    """

    count: int | None = None
    through_seq: int | None = None
    cutoff: str | None = None
    retention_days: int | None = None


@payload(FORWARDING_CHANGED, "settings")
class ForwardingChanged(Payload):
    """fields: what changed; config: the new forwarding configuration (no secret in it: a collector
    address), on the wire beside `fields` at the top level. Subscribers: none (audit only)."""

    fields: list = key("fields", default_factory=list)
    config: dict = key("config", default_factory=dict)

    def to_data(self) -> dict:
        return {"fields": self.fields, **self.config}

    @classmethod
    def from_data(cls, data: dict | None):
        data = dict(data or {})
        return cls(fields=data.pop("fields", []), config=data)
