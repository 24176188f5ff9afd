"""proxmox_sync's answers shaped from rows: the directory's settings, a tenant's view of the sync status."""
from __future__ import annotations

from kernel.db import iso
from services.proxmox_sync import domain


def without_names(item: dict) -> dict:
    """The directory's status without what could name another tenant's users (DNs in errors, conflicts)."""
    run = item["last_run"]
    if run and run["error"]:
        run = {**run, "error": {"code": run["error"]["code"], "message": "The directory run failed."}}
    return {**item, "last_run": run, "conflicts": [], "parked": []}  # parked_count stays


def without_parked(item: dict) -> dict:
    """A target's status with its parked subjects counted (parked_count), not named."""
    return {**item, "parked": []}


def public_directory(row) -> dict:
    if row is None:
        return {"configured": False, **{name: None for name in domain.DIRECTORY_FIELDS}, "password_set": False,
                "realm_bind_password_set": False}
    return {"configured": True, **{name: getattr(row, name) for name in domain.DIRECTORY_FIELDS},
            "password_set": bool(row.password_sealed), "realm_bind_password_set": bool(row.realm_bind_password_sealed),
            "updated_at": iso(row.updated_at)}
