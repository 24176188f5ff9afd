"""proxmox_sync: propagates users, groups and rights to the LDAP directory and to every Proxmox VE
connection, repairs drift; polls each connection's inventory and runs VM/CT power actions; tests
connections."""
from __future__ import annotations

import dataclasses
import logging

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from nameko.timer import timer
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session

from contracts.events import identity as identity_events
from contracts.events import payload_of
from contracts.events import rbac as rbac_events
from contracts.events import tenancy as tenancy_events
from contracts.rbac import SUPER_ADMIN
from kernel import paging
from kernel.authority import require_super_admin
from kernel.consumer import on_event
from kernel.crypto import SecretBox
from kernel.envelope import Actor, utc_now
from kernel.errors import BadGateway, Conflict, NotFound, TransientError, ValidationFailed
from kernel.metrics import ServiceMetrics
from kernel.service import Database, ServiceBase, rpc
from services.proxmox_sync import domain, engine, events, inventory, ldap_directory, ldap_plan, pve, storage
from services.proxmox_sync.poller import InventoryPoller, save_poll
from services.proxmox_sync.domain import LDAP_TARGET, pve_target

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between looks for due work: retries (events run their work at once)
MAX_PAGE = 200

# Identity's events that change a user's directory entry or Proxmox user.
USER_EVENTS = (identity_events.USER_REGISTERED, identity_events.USER_CREATED, identity_events.USER_UPDATED,
               identity_events.USER_STATUS_CHANGED, identity_events.USER_REMOVED)
PASSWORD_EVENTS = (identity_events.PASSWORD_CHANGED, identity_events.PASSWORD_RESET_COMPLETED)


class SyncEngine(DependencyProvider):
    """The process's engine (its lease owner id and schedule), given to every worker."""

    def setup(self):
        self.config = self.container.config["GATEHOUSE"]
        self.box = SecretBox(self.config.secret_key)
        self.engine: engine.Engine | None = None
        self.next_schedule = 0.0  # monotonic time of the next look for due full reconciles
        self.started = False  # the first look marks a full reconcile of every target

    def start(self):
        db = next(dep.db for dep in self.container.dependencies if isinstance(dep, Database))
        self.engine = engine.Engine(db, self.directory_settings)
        self.db = db

    def get_dependency(self, worker_ctx):
        return self

    def directory_settings(self) -> ldap_plan.LdapSettings | None:
        with self.db.unit_of_work() as uow:
            row = uow.session.get(storage.DirectorySettings, 1)
            if row is None:
                return None
            return ldap_plan.LdapSettings(url=row.url, bind_dn=row.bind_dn, password=self.box.open(row.password_sealed),
                                          base_dn=row.base_dn, start_tls=row.start_tls, verify_tls=row.verify_tls,
                                          ca_pem=row.ca_pem, login_shell=row.login_shell)


def sync_metrics(db, now=None):
    """Per target: how long its oldest waiting work has waited (0: nothing waits), and whether it works."""
    now = now or utc_now()
    with Session(db.engine) as session:
        oldest, failing = storage.oldest_work(session), storage.failing_targets(session)
    lag = GaugeMetricFamily("gatehouse_sync_lag_seconds", "Age of the oldest work waiting for a sync target.",
                            labels=["service", "target"])
    up = GaugeMetricFamily("gatehouse_sync_target_up", "1 if the target's last sync run succeeded, else 0.",
                           labels=["service", "target"])
    for target in sorted(set(oldest) | set(failing)):
        arrived = oldest.get(target)
        lag.add_metric([ProxmoxSyncService.name, target], max(0.0, (now - arrived).total_seconds()) if arrived else 0.0)
        up.add_metric([ProxmoxSyncService.name, target], 0.0 if failing.get(target) else 1.0)
    return [lag, up]


class ProxmoxSyncService(ServiceBase):
    name = "proxmox_sync"
    db = Database(storage.metadata)
    metrics = ServiceMetrics(extra=sync_metrics)
    sync = SyncEngine()
    poller = InventoryPoller()
    config = Config()
    identity = RpcProxy("identity")
    rbac = RpcProxy("rbac")
    tenancy = RpcProxy("tenancy")

    # --- connections --------------------------------------------------------------

    @rpc
    def test_connection(self, connection_id, timeout=pve.STEP_TIMEOUT):
        """Does the connection's endpoint answer, and do its credentials work? GET /version with them.

        {"ok": true, "version", "release"} or {"ok": false, "error": {"code", "message"}}; the
        message never holds the secret. `timeout` bounds each network step (seconds).
        """
        endpoint = pve.Endpoint.from_credentials(self.tenancy.connection_credentials(connection_id))
        try:
            return {"ok": True, **pve.probe(endpoint, float(timeout))}
        except pve.PveFailure as failure:
            return {"ok": False, "error": failure.as_dict()}

    # --- sync: running ------------------------------------------------------------------

    def _sources(self) -> engine.Sources:
        return engine.Sources(self.identity, self.rbac, self.tenancy)

    @timer(interval=TICK)
    def run_due_work(self):
        """Runs due work (retries of failed runs, work another instance left), and marks full
        reconciles: of every target at start, then each one GATEHOUSE_SYNC_INTERVAL after its last."""
        sync = self.sync
        now = utc_now().timestamp()
        try:
            if now >= sync.next_schedule:
                sync.next_schedule = now + min(5.0, sync.config.number("GATEHOUSE_SYNC_INTERVAL"))
                sync.engine.schedule_fulls(self._sources(), sync.config.number("GATEHOUSE_SYNC_INTERVAL"),
                                           everything=not sync.started,
                                           directory_configured=sync.directory_settings() is not None)
                sync.started = True
            sync.engine.process_due(self._sources())
        except Exception as error:  # noqa: BLE001 - e.g. tenancy not up yet: the next tick tries again
            log.warning("sync tick: %s: %s", type(error).__name__, error)

    def _mark(self, targets, subject=storage.FULL, hint=None) -> None:
        """Marks the work and runs it at once (the latency users see); a failure leaves it queued."""
        self.sync.engine.enqueue(targets, subject, hint)
        try:
            self.sync.engine.process_due(self._sources(), only={target for target, _ in targets})
        except Exception as error:  # noqa: BLE001 - the work is queued: the timer runs it
            log.warning("sync of %s deferred: %s: %s", [t for t, _ in targets], type(error).__name__, error)

    def _connections_of(self, tenant_ids=None) -> list[tuple[str, str]]:
        """(target, tenant) of the connections of these tenants (None: every connection). Without
        tenancy's answer the event cannot be placed: it goes back to the queue (TransientError)."""
        try:
            connections = self._sources().connections()
        except Exception as error:  # noqa: BLE001
            raise TransientError(f"tenancy did not list connections: {type(error).__name__}") from None
        return [(pve_target(c["id"]), c["tenant_id"]) for c in connections
                if tenant_ids is None or c["tenant_id"] in tenant_ids]

    def _directory(self) -> list[tuple[str, None]]:
        return [(LDAP_TARGET, None)] if self.sync.directory_settings() is not None else []

    # The directory and the connections have handlers (queues) of their own, so one event's
    # runs on both go in parallel, each at once.

    @on_event("identity", types=USER_EVENTS + PASSWORD_EVENTS, dedupe=False)
    def on_user_changed(self, event):
        payload = payload_of(event)
        # The password events carry no profile: the entry is found by its subject.
        profile = payload.profile if isinstance(payload, identity_events.PROFILE_PAYLOADS) \
            else identity_events.UserProfile()
        renamed_from = payload.renamed_from if isinstance(payload, identity_events.UserUpdated) else None
        usernames = [name for name in (profile.username, renamed_from) if name]
        self._mark(self._directory(), engine.user_subject(event.resource.id),
                   {"uid_number": profile.uid_number, "usernames": usernames})

    @on_event("identity", types=USER_EVENTS, dedupe=False)
    def on_user_changed_for_proxmox(self, event):
        self._mark(self._connections_of(set(event.tenant_ids) if event.tenant_ids else None))

    @on_event("rbac", types=(rbac_events.MEMBER_ADDED, rbac_events.MEMBER_REMOVED), dedupe=False)
    def on_membership_changed(self, event):
        if user_id := payload_of(event).user_id:
            self._mark(self._directory(), engine.user_subject(user_id))

    @on_event("rbac", types=(rbac_events.MEMBER_ADDED, rbac_events.MEMBER_REMOVED), dedupe=False)
    def on_membership_changed_for_proxmox(self, event):
        """A tenant's group touches its tenant's connections; a platform-wide or administrator group
        (whose members are super admins, Administrator everywhere) every connection."""
        everywhere = payload_of(event).is_admin or not event.tenant_ids
        self._mark(self._connections_of(None if everywhere else set(event.tenant_ids)))

    @on_event("rbac", types=(rbac_events.GROUP_CREATED, rbac_events.GROUP_UPDATED, rbac_events.GROUP_DELETED),
              dedupe=False)
    def on_group_changed(self, event):
        """The directory holds every group; a tenant's group is mirrored to its tenant's connections only
        (administrator and platform-wide groups: every connection)."""
        payload = payload_of(event)
        everywhere = payload.is_admin or not event.tenant_ids
        if isinstance(payload, rbac_events.GroupUpdated) and "is_admin" in (payload.changes or {}):
            everywhere = True
        self._mark(self._directory() + self._connections_of(None if everywhere else set(event.tenant_ids)))

    @on_event("rbac", types=(rbac_events.ROLE_ASSIGNED, rbac_events.ROLE_UNASSIGNED, rbac_events.ROLE_CREATED,
                             rbac_events.ROLE_UPDATED, rbac_events.ROLE_DELETED), dedupe=False)
    def on_rights_changed(self, event):
        """A super_admin anywhere is Administrator everywhere; other rights stay in their tenant."""
        payload = payload_of(event)
        if isinstance(payload, rbac_events.RoleAssigned):
            roles = (payload.role, payload.previous_role)
        elif isinstance(payload, rbac_events.RoleUnassigned):
            roles = (payload.role,)
        else:  # a custom role: never super_admin
            roles = ()
        everywhere = SUPER_ADMIN in roles or not payload.tenant_id
        self._mark(self._connections_of(None if everywhere else {payload.tenant_id}))

    @on_event("tenancy", types=(tenancy_events.USER_ASSIGNED_TO_TENANT, tenancy_events.USER_REMOVED_FROM_TENANT,
                                tenancy_events.CONNECTION_CREATED, tenancy_events.CONNECTION_UPDATED,
                                tenancy_events.CONNECTION_REASSIGNED, tenancy_events.CONNECTION_DELETED,
                                tenancy_events.MULTI_TENANCY_ENABLED, tenancy_events.MULTI_TENANCY_DISABLED),
              dedupe=False)
    def on_tenancy_changed(self, event):
        if event.type == tenancy_events.CONNECTION_DELETED:
            with self.db.unit_of_work() as uow:
                storage.forget_target(uow.session, pve_target(event.resource.id))
                uow.commit()
            return
        if event.resource.type == "connection":
            self._mark([(pve_target(event.resource.id), _tenant_of_connection(payload_of(event)))])
            return
        self._mark(self._connections_of(set(event.tenant_ids) if event.tenant_ids else None))

    # --- sync: status and requests ------------------------------------------------------------

    @rpc
    def sync_status(self, tenant_id=None):
        """Every target (those of one tenant's connections and the directory, when tenant_id is given)."""
        with self.db.unit_of_work() as uow:
            pending, next_at = storage.pending_counts(uow.session), storage.next_attempts(uow.session)
            rows = uow.session.query(storage.SyncTarget).order_by(storage.SyncTarget.target).all()
            items = [storage.public_target(row, pending.get(row.target, 0), next_at.get(row.target))
                     for row in rows if tenant_id is None or row.target == LDAP_TARGET or row.tenant_id == tenant_id]
        if tenant_id is not None:  # the directory holds every tenant's people: a tenant sees its state, not names
            items = [_without_names(item) if item["target"] == LDAP_TARGET else item for item in items]
        return {"items": items, "directory_configured": self.sync.directory_settings() is not None}

    @rpc
    def request_sync(self, actor, targets=None, tenant_id=None):
        """Marks a full reconcile of the given targets ("ldap", "pve:<connection>") or of all of them
        (those of one tenant when tenant_id is given); they run at once, in the background."""
        known = self._directory() + self._connections_of(None if tenant_id is None else {tenant_id})
        by_name = dict(known)
        if targets:
            unknown = [t for t in targets if t not in by_name]
            if unknown:
                raise NotFound("No such sync target.", code="target_not_found",
                               details={"targets": ", ".join(sorted(unknown))})
            known = [(t, by_name[t]) for t in targets]
        self.sync.engine.enqueue(known)
        with self.db.unit_of_work() as uow:
            for target, _ in known:  # asked for: now, even for a target in backoff
                storage.retry_now(uow.session, target, utc_now())
            uow.emit(events.sync_requested(Actor.from_dict(actor), [t for t, _ in known], tenant_id))
            uow.commit()
        return {"queued": [t for t, _ in known]}

    # --- the directory's settings -------------------------------------------------------------

    @rpc
    def get_directory_settings(self):
        with self.db.unit_of_work() as uow:
            return _public_directory(uow.session.get(storage.DirectorySettings, 1))

    @rpc
    def put_directory_settings(self, actor, fields):
        """Replaces the LDAP directory's settings; a missing password keeps the stored one. The
        directory must accept the bind before anything is stored. Super admins (or the operator CLI) only."""
        actor = Actor.from_dict(actor)
        require_super_admin(self.rbac, actor, "the directory settings")
        fields = {"start_tls": False, "verify_tls": True, "ca_pem": None, "login_shell": "/bin/bash",
                  "realm_server": None, "realm_bind_dn": None, **fields}
        with self.db.unit_of_work() as uow:
            before = uow.session.get(storage.DirectorySettings, 1)
        realm_password_stored = before is not None and before.realm_bind_password_sealed is not None
        if problems := domain.directory_problems(fields, password_stored=before is not None,
                                                 realm_password_stored=realm_password_stored):
            raise ValidationFailed("The LDAP directory settings have invalid fields.", details=problems)
        password = fields.get("password") or self.sync.box.open(before.password_sealed)
        settings = ldap_plan.LdapSettings(url=fields["url"], bind_dn=fields["bind_dn"], password=password,
                                          base_dn=fields["base_dn"], start_tls=fields["start_tls"],
                                          verify_tls=fields["verify_tls"], ca_pem=fields["ca_pem"],
                                          login_shell=fields["login_shell"])
        try:
            with ldap_directory.Directory(settings) as directory:
                directory.ensure_subtrees()
        except ldap_directory.DirectoryUnavailable as failure:
            raise ValidationFailed(f"The directory refused: {failure.message}", code=f"ldap_{failure.code}",
                                   details={"url": failure.message}) from None
        realm_password = self._realm_password(fields, before)
        if realm_password and (problem := ldap_directory.reader_problem(
                dataclasses.replace(settings, bind_dn=fields["realm_bind_dn"], password=realm_password))):
            raise ValidationFailed(f"The realm bind account does not work: {problem}",
                                   code="ldap_realm_bind_refused", details={"realm_bind_dn": problem})
        with self.db.unit_of_work() as uow:
            row = uow.session.get(storage.DirectorySettings, 1)
            changed = [name for name in domain.DIRECTORY_FIELDS
                       if row is None or getattr(row, name) != fields.get(name)]
            if row is None:
                row = storage.DirectorySettings(id=1, version=0)
                uow.session.add(row)
            if fields.get("password") and (before is None or self.sync.box.open(before.password_sealed) != password):
                changed.append("password")
            if realm_password != (self._stored_realm_password(before) if before else None):
                changed.append("realm_bind_password")  # its name only: events never carry a secret
            for name in domain.DIRECTORY_FIELDS:
                setattr(row, name, fields.get(name))
            row.password_sealed = self.sync.box.seal(password)
            row.realm_bind_password_sealed = realm_password and self.sync.box.seal(realm_password)
            row.version += 1
            row.updated_at = utc_now()
            if changed:
                uow.emit(events.directory_settings_changed(actor, changed))
            storage.ensure_target(uow.session, LDAP_TARGET, None)
            storage.enqueue(uow.session, LDAP_TARGET, storage.FULL, utc_now())
            storage.retry_now(uow.session, LDAP_TARGET, utc_now())  # new settings: try them at once
            uow.commit()
            return _public_directory(row)

    def _stored_realm_password(self, row) -> str | None:
        return row.realm_bind_password_sealed and self.sync.box.open(row.realm_bind_password_sealed)

    def _realm_password(self, fields: dict, before) -> str | None:
        """The realm bind password these settings keep: the one given, else the stored one (none
        without a realm bind DN)."""
        if not fields.get("realm_bind_dn"):
            return None
        return fields.get("realm_bind_password") or self._stored_realm_password(before)

    # --- Proxmox realms ------------------------------------------------------------------------

    @rpc
    def configure_realm(self, actor, connection_id, tenant_id=None, server=None, port=None, mode=None):
        """Creates or updates, on the connection's Proxmox, the LDAP realm (the connection's `realm`)
        pointing at our directory's people: Proxmox then checks passwords against LDAP."""
        actor = Actor.from_dict(actor)
        credentials = self.tenancy.connection_credentials(connection_id)
        if tenant_id is not None and credentials["tenant_id"] != tenant_id:
            raise NotFound("No such connection.", code="connection_not_found", details={"connection_id": connection_id})
        settings = self.sync.directory_settings()
        if settings is None:
            raise ValidationFailed("Configure the LDAP directory first (PUT /api/v1/settings/ldap).",
                                   code="directory_not_configured", details={"ldap": "not configured"})
        with self.db.unit_of_work() as uow:
            row = uow.session.get(storage.DirectorySettings, 1)
            realm_server, bind_dn, bind_password = row.realm_server, row.realm_bind_dn, self._stored_realm_password(row)
            last_sent = storage.realm_sent(uow.session, connection_id)
        spec = pve.RealmSpec(**domain.realm_fields(credentials["realm"], settings, server or realm_server, port, mode,
                                                   bind_dn), bind_password=bind_password)
        digest = bind_password and self.sync.box.keyed_digest(bind_password)
        try:
            with pve.session(pve.Endpoint.from_credentials(credentials)) as api:
                result = pve.ensure_realm(api, spec, domain.realm_password_due(last_sent, spec.realm, bind_dn, digest))
        except pve.PveFailure as failure:
            with self.db.unit_of_work() as uow:
                uow.emit(events.realm_configured(actor, connection_id, credentials["tenant_id"], spec.realm, "failed",
                                                 "failure", failure.as_dict()))
                uow.commit()
            return {"ok": False, "realm": spec.realm, "error": failure.as_dict()}
        with self.db.unit_of_work() as uow:
            storage.record_realm_sent(uow.session, connection_id, spec.realm, bind_dn, digest, utc_now())
            uow.emit(events.realm_configured(actor, connection_id, credentials["tenant_id"], spec.realm, result))
            uow.commit()
        return {"ok": True, "realm": spec.realm, "result": result, "server": spec.server, "port": spec.port,
                "mode": spec.mode, "base_dn": spec.base_dn, "bind_dn": spec.bind_dn}

    # --- inventory ------------------------------------------------------------------
    # The gateway checks permissions and scope with rbac before asking; answers here are
    # confined to `tenant_id` (another tenant's guest is NotFound, never Forbidden).

    @rpc
    def inventory(self, kind, tenant_id, scope=None, filters=None, limit=50, cursor=None):
        """A page of the tenant's "nodes", "vms" or "storages" that `scope` (rbac's, empty lists:
        everything) covers and `filters` (connection_id, node, status, type) match."""
        if kind not in inventory.LISTS:
            raise ValidationFailed("Unknown inventory list.", details={"kind": f"one of {', '.join(inventory.LISTS)}"})
        filters = filters or {}
        offset = paging.offset_of(cursor)
        limit = max(1, min(int(limit), MAX_PAGE))
        with self.db.unit_of_work() as uow:
            rows = inventory.visible(storage.inventory_rows(uow.session, tenant_id, inventory.LISTS[kind],
                                                            filters.get("connection_id")), scope, filters)
            items = [inventory.item_of(row) for row in rows[offset:offset + limit]]
        return paging.page_answer(items, offset, len(rows))

    @rpc
    def guest(self, tenant_id, vm_id):
        """One VM or container of the tenant by its API id "<connection_id>.<vmid>"; NotFound otherwise."""
        with self.db.unit_of_work() as uow:
            return inventory.item_of(self._guest_row(uow.session, tenant_id, vm_id))

    @rpc
    def inventory_status(self, tenant_id, limit=50, cursor=None):
        """How the last poll of each of the tenant's connections went, a page of them."""
        with self.db.unit_of_work() as uow:
            statuses = [inventory.status_of(status) for status in storage.inventory_statuses(uow.session, tenant_id)]
        return paging.page(statuses, max(1, min(int(limit), MAX_PAGE)), cursor)

    @rpc
    def vm_action(self, actor, tenant_id, vm_id, action, timeout=pve.STEP_TIMEOUT):
        """start, stop, shutdown or reboot a guest of the tenant through Proxmox VE: {"vm", "action",
        "task"} (the task's UPID). Audited with its outcome; the connection's inventory is read again.
        A refusal of Proxmox VE (e.g. starting a running guest) is a Conflict `action_refused`; a
        failure to reach it a BadGateway with the failure code (unreachable, timeout, ...)."""
        actor = Actor.from_dict(actor)
        if action not in inventory.ACTIONS:
            raise unknown_action(action)
        with self.db.unit_of_work() as uow:
            guest = inventory.item_of(self._guest_row(uow.session, tenant_id, vm_id))
        connection_id = guest["connection_id"]
        # tenancy is the authority on ownership: the rows may predate a reassignment.
        credentials = self.tenancy.connection_credentials(connection_id)
        if credentials["tenant_id"] != tenant_id:
            raise _no_such_guest(vm_id)
        endpoint = pve.Endpoint.from_credentials(credentials)
        step = float(timeout)
        try:
            task = inventory.power(endpoint, guest["type"], guest["node"], guest["vmid"], action, step)
        except pve.PveFailure as failure:
            with self.db.unit_of_work() as uow:
                uow.emit(events.vm_action(actor, tenant_id, guest, action, failure=failure.as_dict()))
                uow.commit()
            error = Conflict if failure.code == inventory.ACTION_REFUSED else BadGateway
            raise error(failure.message, code=failure.code, details={"vm": vm_id, "action": action}) from None
        rows, poll_failure, started_at = None, None, utc_now()
        try:
            rows = inventory.poll_connection(endpoint, started_at, step)
        except pve.PveFailure as failure:
            poll_failure = failure
        with self.db.unit_of_work() as uow:
            save_poll(uow, connection_id, tenant_id, started_at, rows, poll_failure)
            uow.emit(events.vm_action(actor, tenant_id, guest, action, task=task))
            uow.commit()
        return {"vm": guest["id"], "action": action, "task": task}

    @on_event("tenancy", types=[tenancy_events.CONNECTION_DELETED])
    def forget_deleted_connection(self, event, uow):
        storage.forget_connections(uow.session, [event.resource.id])

    @on_event("tenancy", types=[tenancy_events.CONNECTION_REASSIGNED])
    def follow_reassigned_connection(self, event, uow):
        moved = tenancy_events.ConnectionReassigned.from_event(event)
        storage.move_connection(uow.session, event.resource.id, moved.to)
        self.poller.wake()

    @on_event("tenancy", types=[tenancy_events.CONNECTION_CREATED, tenancy_events.CONNECTION_UPDATED])
    def poll_changed_connection(self, event, uow):
        self.poller.wake()  # a new or changed connection shows its inventory without waiting for the interval

    @staticmethod
    def _guest_row(session, tenant_id, vm_id):
        parsed = inventory.parse_guest_id(vm_id)
        row = storage.guest_row(session, tenant_id, *parsed) if parsed else None
        if row is None:
            raise _no_such_guest(vm_id)
        return row


def _without_names(item: dict) -> dict:
    """The directory's status without what could name another tenant's users (DNs in errors, conflicts)."""
    run = item["last_run"]
    if run and run["error"]:
        run = {**run, "error": {"code": run["error"]["code"], "message": "The directory run failed."}}
    return {**item, "last_run": run, "conflicts": []}


def _public_directory(row) -> dict:
    if row is None:
        return {"configured": False, **{name: None for name in domain.DIRECTORY_FIELDS}, "password_set": False,
                "realm_bind_password_set": False}
    return {"configured": True, **{name: getattr(row, name) for name in domain.DIRECTORY_FIELDS},
            "password_set": bool(row.password_sealed), "realm_bind_password_set": bool(row.realm_bind_password_sealed),
            "updated_at": storage.iso(row.updated_at)}


def unknown_action(action) -> NotFound:
    return NotFound(f"No action {action!r}: use one of {', '.join(inventory.ACTIONS)}.", code="unknown_action",
                    details={"action": f"one of {', '.join(inventory.ACTIONS)}"})


def _no_such_guest(vm_id) -> NotFound:
    return NotFound("No such VM or container.", code="vm_not_found", details={"vm_id": vm_id})


def _tenant_of_connection(payload) -> str | None:
    """The tenant a connection event places its connection in (connection_updated names none)."""
    if isinstance(payload, tenancy_events.ConnectionReassigned):
        return payload.to
    if isinstance(payload, tenancy_events.ConnectionCreated):
        return payload.tenant_id
    return None
