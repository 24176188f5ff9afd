"""proxmox_sync's event producers: each builds its payload (contracts.events.proxmox_sync).

The event types and payload classes are proxmox_sync's contract with its consumers
(contracts/events/proxmox_sync.py); they are re-exported here for proxmox_sync's own code.
Never a secret: no bind password, no hash, no connection secret; change descriptions name
entries and attributes, never their values.
"""
from __future__ import annotations

from contracts.events import event
from contracts.events.proxmox_sync import *  # noqa: F403 - the types and payloads, re-exported
from contracts.events.proxmox_sync import (SAMPLE, CertificateFetched, DirectorySettingsChanged, RealmConfigured, SubjectParked,
                                           SubjectUnparked, SyncRequested, TargetFailed, TargetRecovered,
                                           TargetSynced, VmAction)
from kernel.envelope import Actor, Event, Resource

SYSTEM = Actor(user_id=None, username="system")


def _target(target: str) -> Resource:
    return Resource("sync_target", target, target)


def directory_settings_changed(actor: Actor, fields: list[str]) -> Event:
    return event(DirectorySettingsChanged(fields=sorted(fields)), actor, Resource("settings", "ldap", "LDAP directory"))


def sync_requested(actor: Actor, targets: list[str], tenant_id: str | None) -> Event:
    return event(SyncRequested(targets=targets), actor, Resource("sync", "run", "sync run"), tenant_ids=(tenant_id,))


def target_synced(target: str, tenant_id: str | None, mode: str, changes: list[dict], duration_ms: int,
                  conflicts: list[dict]) -> Event:
    counts: dict[str, int] = {}
    for change in changes:
        key = f"{change.get('op')}_{change.get('kind') or 'entry'}"
        counts[key] = counts.get(key, 0) + 1
    return event(TargetSynced(mode=mode, changes=len(changes), counts=counts, sample=changes[:SAMPLE],
                              duration_ms=duration_ms, conflicts=conflicts[:SAMPLE]),
                 SYSTEM, _target(target), tenant_ids=(tenant_id,))


def target_failed(target: str, tenant_id: str | None, error: dict) -> Event:
    """error: {"code", "message"}, recorded as error and error_message (events carry no key named like a code)."""
    return event(TargetFailed(error=error["code"], error_message=error["message"]), SYSTEM, _target(target),
                 outcome="failure", tenant_ids=(tenant_id,))


def target_recovered(target: str, tenant_id: str | None, down_seconds: float) -> Event:
    return event(TargetRecovered(down_seconds=round(down_seconds, 1)), SYSTEM, _target(target),
                 tenant_ids=(tenant_id,))


def realm_configured(actor: Actor, connection_id: str, tenant_id: str, realm: str, result: str,
                     outcome: str = "success", error: dict | None = None) -> Event:
    return event(RealmConfigured(realm=realm, result=result, error=error and error["code"],
                                 error_message=error and error["message"]),
                 actor, Resource("connection", connection_id, realm), outcome=outcome, tenant_ids=(tenant_id,))


# --- connections -----------------------------------------------------------------------

def certificate_fetched(actor: Actor, tenant_id: str | None, address: str, fingerprint: str | None = None,
                        failure: dict | None = None) -> Event:
    """An address's certificate read for an administrator (address: host:port); failure: {"code",
    "message"} when none was had (recorded as error and error_message)."""
    return event(CertificateFetched(address=address, fingerprint=None if failure else fingerprint,
                                    error=failure["code"] if failure else None,
                                    error_message=failure["message"] if failure else None),
                 actor, Resource("address", address, address), outcome="failure" if failure else "success",
                 tenant_ids=(tenant_id,))


# --- inventory -------------------------------------------------------------------------

def vm_action(actor: Actor, tenant_id: str, guest: dict, action: str, task: str | None = None,
              failure: dict | None = None) -> Event:
    """A power action on a VM or container, with its outcome. guest: id, connection_id, node,
    vmid, type, name; failure: {"code", "message"} of a failed action (recorded as error and
    error_message: events carry no key named like a code)."""
    return event(VmAction(action=action, connection_id=guest["connection_id"], node=guest["node"], vmid=guest["vmid"],
                          type=guest["type"], task=task, error=failure["code"] if failure else None,
                          error_message=failure["message"] if failure else None),
                 actor, Resource("vm", guest["id"], guest.get("name")), outcome="failure" if failure else "success",
                 tenant_ids=(tenant_id,))


# --- parked subjects: one user's or group's refused change, isolated -------------------------

def subject_parked(target: str, tenant_id: str | None, subject: str, label: str | None, error: dict) -> Event:
    """The target refused `subject`'s change for its data: parked, the others' work went on."""
    return event(SubjectParked(subject=subject, label=label, error=error["code"], error_message=error["message"]),
                 SYSTEM, _target(target), outcome="failure", tenant_ids=(tenant_id,))


def subject_unparked(target: str, tenant_id: str | None, subject: str, label: str | None,
                     parked_seconds: float) -> Event:
    """A run covered a parked subject and the target took its change (or nothing was left to change)."""
    return event(SubjectUnparked(subject=subject, label=label, parked_seconds=round(parked_seconds, 1)),
                 SYSTEM, _target(target), tenant_ids=(tenant_id,))
