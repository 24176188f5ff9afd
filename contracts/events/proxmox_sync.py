"""proxmox_sync's events: their types and payloads.

Never a secret: no bind password, no hash, no connection secret; change descriptions name
entries and attributes, never their values. A failure's code is recorded as `error` and its
message as `error_message` (events carry no key named like a code). audit records every event.
"""
from __future__ import annotations

from contracts.events import Payload, key, omitted, payload

# --- sync ---------------------------------------------------------------------------
DIRECTORY_SETTINGS_CHANGED = "proxmox_sync.directory_settings_changed"
SYNC_REQUESTED = "proxmox_sync.sync_requested"
TARGET_SYNCED = "proxmox_sync.target_synced"
TARGET_FAILED = "proxmox_sync.target_failed"
TARGET_RECOVERED = "proxmox_sync.target_recovered"
REALM_CONFIGURED = "proxmox_sync.realm_configured"
# One user's or group's change refused by a target for its data: parked alone, the rest goes on.
SUBJECT_PARKED = "proxmox_sync.subject_parked"
SUBJECT_UNPARKED = "proxmox_sync.subject_unparked"

SYNC_EVENTS = (DIRECTORY_SETTINGS_CHANGED, SYNC_REQUESTED, TARGET_SYNCED, TARGET_FAILED, TARGET_RECOVERED,
               REALM_CONFIGURED, SUBJECT_PARKED, SUBJECT_UNPARKED)

# --- inventory -------------------------------------------------------------------------
VM_ACTION = "proxmox_sync.vm_action"

# --- connections: an address an administrator had proxmox_sync reach -----------------------
CERTIFICATE_FETCHED = "proxmox_sync.certificate_fetched"

ALL = (*SYNC_EVENTS, VM_ACTION, CERTIFICATE_FETCHED)

SAMPLE = 20  # changes described in one event; the count says how many there were
SAMPLES = ("sample", "conflicts")  # the keys of target_synced holding described changes


@payload(DIRECTORY_SETTINGS_CHANGED, "sync")
class DirectorySettingsChanged(Payload):
    """fields: names of the settings that changed (never values). Subscribers: none (audit only)."""

    fields: list = key("fields", default_factory=list)


@payload(SYNC_REQUESTED, "sync")
class SyncRequested(Payload):
    """Subscribers: none (audit only)."""

    targets: list = key("targets", default_factory=list)


@payload(TARGET_SYNCED, "sync")
class TargetSynced(Payload):
    """changes: how many; counts: "<op>_<kind>" -> how many; sample and conflicts: at most SAMPLE
    described changes (audit shows another tenant's reader only their op and kind).
    Subscribers: none (audit only; its tenant view trims `sample` and `conflicts`)."""

    mode: str | None = None
    changes: int = 0
    counts: dict = key("counts", default_factory=dict)
    sample: list = key("sample", default_factory=list)
    duration_ms: int | None = None
    conflicts: list = key("conflicts", default_factory=list)


@payload(TARGET_FAILED, "sync")
class TargetFailed(Payload):
    """Subscribers: none (audit only)."""

    error: str | None = None
    error_message: str | None = None


@payload(TARGET_RECOVERED, "sync")
class TargetRecovered(Payload):
    """Subscribers: none (audit only)."""

    down_seconds: float | None = None


@payload(REALM_CONFIGURED, "sync")
class RealmConfigured(Payload):
    """Subscribers: none (audit only)."""

    realm: str | None = None
    result: str | None = None
    error: str | None = None
    error_message: str | None = None


@payload(SUBJECT_PARKED, "sync")
class SubjectParked(Payload):
    """subject: `user:<id>`, `group:<cn>`, `entry:<dn>`...; label: its name; the target's refusal as
    error and error_message (naming the entry and the result, never a value).
    Subscribers: none (audit only)."""

    subject: str | None = None
    label: str | None = None
    error: str | None = None
    error_message: str | None = None


@payload(SUBJECT_UNPARKED, "sync")
class SubjectUnparked(Payload):
    """A parked subject's change went through (or nothing was left to change).
    Subscribers: none (audit only)."""

    subject: str | None = None
    label: str | None = None
    parked_seconds: float | None = None


@payload(VM_ACTION, "operations")
class VmAction(Payload):
    """A power action on a VM or container, with its outcome; error and error_message only when
    it failed. Subscribers: none (audit only)."""

    action: str | None = None
    connection_id: str | None = None
    node: str | None = None
    vmid: int | None = None
    type: str | None = None
    task: str | None = None
    error: str | None = omitted()
    error_message: str | None = omitted()


@payload(CERTIFICATE_FETCHED, "tenancy")
class CertificateFetched(Payload):
    """An administrator had proxmox_sync read the certificate an address presents (POST
    /api/v1/connections/tls/fingerprint: a TLS handshake with a host on Gatehouse's network, so each
    one is recorded, docs/security.md). address: `host:port`; fingerprint when a certificate was
    had, else error and error_message (our words). Subscribers: none (audit only)."""

    address: str | None = None
    fingerprint: str | None = omitted()
    error: str | None = omitted()
    error_message: str | None = omitted()
