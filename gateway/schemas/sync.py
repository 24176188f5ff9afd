"""Bodies of /api/v1/sync, /api/v1/settings/ldap and the realm action of a connection."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from contracts import proxmox_sync as domain
from gateway.schemas import JsonBoolean, WholeBodyRule

ISO = {"format": "date-time"}


class SyncErrorOut(Schema):
    code = String()
    message = String()


class SyncRunOut(Schema):
    started_at = String(metadata=ISO)
    finished_at = String(allow_none=True, metadata=ISO)
    mode = String(metadata={"description": "`full` (a reconcile) or `targeted` (the users events named)"})
    duration_ms = Integer(allow_none=True)
    changes = Integer(metadata={"description": "writes made to the target"})
    error = Nested(SyncErrorOut, allow_none=True)


class ProgressOut(Schema):
    done = Integer()
    total = Integer()


class ParkedSubjectOut(Schema):  # parked subjects (issue 20)
    subject = String(metadata={"description": "`user:<id>`, `group:<cn>`, or `entry:<dn>` (an entry in the way)"})
    label = String(allow_none=True, metadata={"description": "what the target refused: a DN or a Proxmox VE id"})
    reason = Dict(metadata={"description": "the target's refusal: `code` and `message` (never a value)"})
    attempts = Integer(metadata={"description": "refusals in a row"})
    since = String(metadata=ISO)
    last_refused_at = String(metadata=ISO)


class SyncTargetOut(Schema):
    target = String(metadata={"description": "`ldap`, or `pve:<connection id>`"})
    kind = String(metadata={"description": "`ldap` or `proxmox`"})
    connection_id = String(allow_none=True)
    tenant_id = String(allow_none=True)
    state = String(metadata={"description": "`idle`, `running` or `failing` (its work is retried with backoff)"})
    running = String(allow_none=True, metadata={"description": "`full` or `targeted` while a run goes on"})
    progress = Nested(ProgressOut, allow_none=True, metadata={"description": "changes written of those planned"})
    last_run = Nested(SyncRunOut, allow_none=True)
    last_full_at = String(allow_none=True, metadata=ISO)
    failing_since = String(allow_none=True, metadata=ISO)
    conflicts = List(Dict(), metadata={"description": "objects in the way that Gatehouse does not manage"})
    changes_total = Integer()
    pending = Integer(metadata={"description": "units of work waiting (a full reconcile, users)"})
    next_attempt_at = String(allow_none=True, metadata=ISO)
    # parked subjects (issue 20)
    parked = List(Nested(ParkedSubjectOut), metadata={
        "description": "subjects whose change the target refused for their data, while everyone else's work went "
                       "on; retried when their data changes, on a requested sync and on every full reconcile"})
    parked_count = Integer(metadata={"description": "how many subjects are parked (`parked` lists up to 100)"})


class SyncStatusOut(Schema):
    items = List(Nested(SyncTargetOut))
    directory_configured = JsonBoolean()


class SyncRunIn(Schema):
    targets = List(String(validate=Length(1, 64)), validate=Length(1, 200), metadata={
        "description": "`ldap` and/or `pve:<connection id>`; leave out for every target you can see"})


class SyncQueuedOut(Schema):
    queued = List(String())


class DirectorySettingsIn(WholeBodyRule):
    # Whether a password is stored only proxmox_sync knows: it alone refuses a first one without.
    problems_of = staticmethod(lambda body: domain.directory_problems(body, password_stored=True))

    url = String(required=True, validate=Length(1, 512), metadata={"description": "ldap://host[:port] or ldaps://..."})
    bind_dn = String(required=True, validate=Length(1, 512))
    password = String(validate=Length(1, 1024), load_only=True, metadata={
        "description": "write-only; required the first time, leave out to keep the stored one"})
    base_dn = String(required=True, validate=Length(1, 512), metadata={
        "description": "users go under ou=people, groups under ou=groups of it"})
    start_tls = JsonBoolean(load_default=False)
    verify_tls = JsonBoolean(load_default=True)
    ca_pem = String(allow_none=True, load_default=None, validate=Length(0, 65536))
    login_shell = String(load_default="/bin/bash", validate=Length(1, 128))
    realm_server = String(allow_none=True, load_default=None, validate=Length(1, 255), metadata={
        "description": "host Proxmox nodes reach the directory at, when not the URL's"})
    realm_bind_dn = String(allow_none=True, load_default=None, validate=Length(1, 256), metadata={
        "description": "read-only account Proxmox VE realms search the people as (the directory should "
                       "refuse anonymous searches); null: realms search anonymously"})
    realm_bind_password = String(validate=Length(1, 1024), load_only=True, metadata={
        "description": "write-only; required with a first realm_bind_dn, leave out to keep the stored one"})


class DirectorySettingsOut(Schema):
    configured = JsonBoolean()
    url = String(allow_none=True)
    bind_dn = String(allow_none=True)
    base_dn = String(allow_none=True)
    start_tls = JsonBoolean(allow_none=True)
    verify_tls = JsonBoolean(allow_none=True)
    ca_pem = String(allow_none=True)
    login_shell = String(allow_none=True)
    realm_server = String(allow_none=True)
    password_set = JsonBoolean(metadata={"description": "a bind password is stored (it is never shown)"})
    realm_bind_dn = String(allow_none=True)
    realm_bind_password_set = JsonBoolean(metadata={"description": "a realm bind password is stored (it is never shown)"})
    updated_at = String(allow_none=True, metadata=ISO)


class RealmIn(Schema):
    server = String(validate=Length(1, 255), metadata={"description": "default: the directory's realm_server or URL host"})
    port = Integer(validate=Range(1, 65535), strict=True)
    mode = String(validate=OneOf(["ldap", "ldaps", "ldap+starttls"]))


class RealmOut(Schema):
    ok = JsonBoolean()
    realm = String()
    result = String(metadata={"description": "`created`, `updated` or `unchanged`, when ok"})
    server = String()
    port = Integer()
    mode = String()
    base_dn = String()
    bind_dn = String(allow_none=True, metadata={"description": "the account the realm searches as (null: anonymous)"})
    error = Nested(SyncErrorOut, metadata={"description": "why not, when not ok"})
