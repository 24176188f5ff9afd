"""Every event proxmox_sync publishes, in one place.

Never a secret: no bind password, no hash, no connection secret; change descriptions name
entries and attributes, never their values.
"""
from __future__ import annotations

from kernel.envelope import Actor, Event, Resource

# --- sync ---------------------------------------------------------------------------
DIRECTORY_SETTINGS_CHANGED = "proxmox_sync.directory_settings_changed"
SYNC_REQUESTED = "proxmox_sync.sync_requested"
TARGET_SYNCED = "proxmox_sync.target_synced"
TARGET_FAILED = "proxmox_sync.target_failed"
TARGET_RECOVERED = "proxmox_sync.target_recovered"
REALM_CONFIGURED = "proxmox_sync.realm_configured"

SYNC_EVENTS = (DIRECTORY_SETTINGS_CHANGED, SYNC_REQUESTED, TARGET_SYNCED, TARGET_FAILED, TARGET_RECOVERED,
               REALM_CONFIGURED)

# --- inventory -------------------------------------------------------------------------
VM_ACTION = "proxmox_sync.vm_action"

ALL = (*SYNC_EVENTS, VM_ACTION)

SYSTEM = Actor(user_id=None, username="system")
SAMPLE = 20  # changes described in one event; the count says how many there were


def _event(type_: str, actor: Actor, resource: Resource, data: dict, tenant_id: str | None = None,
           outcome: str = "success") -> Event:
    return Event(type=type_, source="proxmox_sync", category="sync", actor=actor, resource=resource, data=data,
                 outcome=outcome, tenant_ids=(tenant_id,) if tenant_id else ())


def _target(target: str) -> Resource:
    return Resource("sync_target", target, target)


def directory_settings_changed(actor: Actor, fields: list[str]) -> Event:
    return _event(DIRECTORY_SETTINGS_CHANGED, actor, Resource("settings", "ldap", "LDAP directory"),
                  {"fields": sorted(fields)})


def sync_requested(actor: Actor, targets: list[str], tenant_id: str | None) -> Event:
    return _event(SYNC_REQUESTED, actor, Resource("sync", "run", "sync run"), {"targets": targets}, tenant_id)


def target_synced(target: str, tenant_id: str | None, mode: str, changes: list[dict], duration_ms: int,
                  conflicts: list[dict]) -> Event:
    counts: dict[str, int] = {}
    for change in changes:
        key = f"{change.get('op')}_{change.get('kind') or 'entry'}"
        counts[key] = counts.get(key, 0) + 1
    return _event(TARGET_SYNCED, SYSTEM, _target(target),
                  {"mode": mode, "changes": len(changes), "counts": counts, "sample": changes[:SAMPLE],
                   "duration_ms": duration_ms, "conflicts": conflicts[:SAMPLE]}, tenant_id)


def target_failed(target: str, tenant_id: str | None, error: dict) -> Event:
    """error: {"code", "message"}, recorded as error and error_message (events carry no key named like a code)."""
    return _event(TARGET_FAILED, SYSTEM, _target(target), {"error": error["code"], "error_message": error["message"]},
                  tenant_id, outcome="failure")


def target_recovered(target: str, tenant_id: str | None, down_seconds: float) -> Event:
    return _event(TARGET_RECOVERED, SYSTEM, _target(target), {"down_seconds": round(down_seconds, 1)}, tenant_id)


def realm_configured(actor: Actor, connection_id: str, tenant_id: str, realm: str, result: str,
                     outcome: str = "success", error: dict | None = None) -> Event:
    return _event(REALM_CONFIGURED, actor, Resource("connection", connection_id, realm),
                  {"realm": realm, "result": result, "error": error and error["code"],
                   "error_message": error and error["message"]}, tenant_id, outcome)


# --- inventory -------------------------------------------------------------------------

def vm_action(actor: Actor, tenant_id: str, guest: dict, action: str, task: str | None = None,
              failure: dict | None = None) -> Event:
    """A power action on a VM or container, with its outcome. guest: id, connection_id, node,
    vmid, type, name; failure: {"code", "message"} of a failed action (recorded as error and
    error_message: events carry no key named like a code)."""
    data = {"action": action, "connection_id": guest["connection_id"], "node": guest["node"], "vmid": guest["vmid"],
            "type": guest["type"], "task": task}
    if failure:
        data.update(error=failure["code"], error_message=failure["message"])
    return Event(type=VM_ACTION, source="proxmox_sync", category="operations", actor=actor,
                 resource=Resource("vm", guest["id"], guest.get("name")), data=data,
                 outcome="failure" if failure else "success", tenant_ids=(tenant_id,))



# --- parked subjects (issue 20): one user's or group's refused change, isolated ----------------
# A separate block so it can move with this module. Never a value: the reason names the entry
# (a DN or a Proxmox VE id) and the target's result, as target_failed does.
SUBJECT_PARKED = "proxmox_sync.subject_parked"
SUBJECT_UNPARKED = "proxmox_sync.subject_unparked"
SYNC_EVENTS = (*SYNC_EVENTS, SUBJECT_PARKED, SUBJECT_UNPARKED)
ALL = (*ALL, SUBJECT_PARKED, SUBJECT_UNPARKED)


def subject_parked(target: str, tenant_id: str | None, subject: str, label: str | None, error: dict) -> Event:
    """The target refused `subject`'s change for its data: parked, the others' work went on."""
    return _event(SUBJECT_PARKED, SYSTEM, _target(target),
                  {"subject": subject, "label": label, "error": error["code"], "error_message": error["message"]},
                  tenant_id, outcome="failure")


def subject_unparked(target: str, tenant_id: str | None, subject: str, label: str | None,
                     parked_seconds: float) -> Event:
    """A run covered a parked subject and the target took its change (or nothing was left to change)."""
    return _event(SUBJECT_UNPARKED, SYSTEM, _target(target),
                  {"subject": subject, "label": label, "parked_seconds": round(parked_seconds, 1)}, tenant_id)
