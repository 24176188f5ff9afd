"""Every event audit publishes, in one place. They are recorded like any other event."""
from __future__ import annotations

from kernel.envelope import Actor, Event, Resource

# --- reading: forwarding to a SIEM ---------------------------------------------------

FORWARDING_CHANGED = "audit.forwarding_changed"


def forwarding_changed(actor: Actor, config: dict, changed_fields: list[str]) -> Event:
    """The new forwarding configuration (no secret in it: a collector address) and what changed."""
    return Event(type=FORWARDING_CHANGED, source="audit", category="settings", actor=actor,
                 resource=Resource("setting", "audit-forwarding", "audit forwarding"),
                 data={"fields": changed_fields, **config})


READING = (FORWARDING_CHANGED,)

ALL = (*READING,)
