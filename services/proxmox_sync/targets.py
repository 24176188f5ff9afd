"""The sync targets (the directory, "ldap", and each connection's Proxmox VE, "pve:<connection>"): how
they stand, and requests for a full reconcile.

Use cases take a unit of work not yet entered and enter it themselves.
"""
from __future__ import annotations

from kernel.envelope import utc_now
from kernel.errors import NotFound
from services.proxmox_sync import events, storage, views
from services.proxmox_sync.domain import LDAP_TARGET


def sync_status(uow, directory_configured: bool, tenant_id=None) -> dict:
    """Every target (those of one tenant's connections and the directory, when tenant_id is given)."""
    with uow:
        pending, next_at = storage.pending_counts(uow.session), storage.next_attempts(uow.session)
        rows = uow.session.query(storage.SyncTarget).order_by(storage.SyncTarget.target).all()
        items = [storage.public_target(row, pending.get(row.target, 0), next_at.get(row.target))
                 for row in rows if tenant_id is None or row.target == LDAP_TARGET or row.tenant_id == tenant_id]
    if tenant_id is not None:
        # The directory holds every tenant's people: a tenant sees its state, not names. A cluster
        # mirrors the platform-wide groups and may hold super admins: its parked subjects are counted only.
        items = [views.without_names(item) if item["target"] == LDAP_TARGET else views.without_parked(item)
                 for item in items]
    return {"items": items, "directory_configured": directory_configured}


def request_sync(uow, engine, known, actor, targets=None, tenant_id=None) -> dict:
    """Marks a full reconcile of the given targets ("ldap", "pve:<connection>") or of all `known`
    ((target, tenant) the caller may ask for); they run at once, in the background (`engine`, the
    process's engine.Engine)."""
    by_name = dict(known)
    if targets:
        unknown = [t for t in targets if t not in by_name]
        if unknown:
            raise NotFound("No such sync target.", code="target_not_found",
                           details={"targets": ", ".join(sorted(unknown))})
        known = [(t, by_name[t]) for t in targets]
    engine.enqueue(known)
    with uow:
        for target, _ in known:  # asked for: now, even for a target in backoff
            storage.retry_now(uow.session, target, utc_now())
        uow.emit(events.sync_requested(actor, [t for t, _ in known], tenant_id))
        uow.commit()
    return {"queued": [t for t, _ in known]}
