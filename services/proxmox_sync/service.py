"""proxmox_sync: propagates users, groups and rights to the LDAP directory and to every Proxmox VE
connection, repairs drift; polls each connection's inventory and runs VM/CT power actions; tests
connections.

The entrypoints translate nameko to the use cases: targets.py (sync status and requests),
directory_settings.py (the directory's settings, Proxmox realms), guests.py (inventory, power
actions); the engine (engine.py) runs the sync work the event handlers here mark. Use cases take a
unit of work (`self.db.unit_of_work()`) and the RpcProxies they ask, so they run without nameko.
"""
from __future__ import annotations

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
from kernel.authority import require_permission
from kernel.consumer import on_event
from kernel.crypto import SecretBox
from kernel.envelope import Actor, utc_now
from kernel.errors import NotFound, TransientError
from kernel.metrics import ServiceMetrics
from kernel.service import Database, ServiceBase, rpc
from services.proxmox_sync import certificates, directory_settings, engine, guests, ldap_plan, pve, storage, targets
from services.proxmox_sync.poller import InventoryPoller
from services.proxmox_sync.domain import LDAP_TARGET, pve_target

_targets = targets  # for request_sync, whose RPC signature has a parameter named `targets`

log = logging.getLogger(__name__)

# The routes' own permissions, asked of rbac here whatever the gateway asked (kernel/authority.py).
CONNECTION_MANAGE, SYNC_RUN = "connection.manage", "sync.run"
TICK = 1.0  # seconds between looks for due work: retries (events run their work at once)

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
            return directory_settings.settings_of(uow.session.get(storage.DirectorySettings, 1), self.box)


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
    def test_connection(self, actor, connection_id, tenant_id=None, timeout=pve.STEP_TIMEOUT):
        """Does the connection's endpoint answer, and do its credentials work? GET /version with them.

        {"ok": true, "version", "release"} or {"ok": false, "error": {"code", "message"}}; the
        message never holds the secret. `timeout` bounds each network step (seconds). The actor needs
        connection.manage in `tenant_id` (None: every tenant, super admins), and the connection is there.
        """
        require_permission(self.rbac, actor, CONNECTION_MANAGE, tenant_id)
        credentials = self.tenancy.connection_credentials(connection_id)
        if tenant_id is not None and credentials["tenant_id"] != tenant_id:
            raise NotFound("No such connection.", code="connection_not_found", details={"connection_id": connection_id})
        endpoint = pve.Endpoint.from_credentials(credentials)
        try:
            return {"ok": True, **pve.probe(endpoint, float(timeout))}
        except pve.PveFailure as failure:
            return {"ok": False, "error": failure.as_dict()}

    @rpc
    def server_certificate(self, actor, tenant_id, url, timeout=pve.STEP_TIMEOUT):
        """The certificate `url` presents (fingerprint, subject, issuer, validity): a TLS handshake only,
        counted against GATEHOUSE_CERT_FETCHES_PER_ADMIN and audited."""
        return certificates.server_certificate(self.db.unit_of_work(), self.rbac, Actor.from_dict(actor), tenant_id,
                                               url, certificates.FetchLimit.from_config(self.config["GATEHOUSE"]),
                                               float(timeout))

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
        return targets.sync_status(self.db.unit_of_work(), self.sync.directory_settings() is not None, tenant_id)

    @rpc
    def request_sync(self, actor, targets=None, tenant_id=None):
        require_permission(self.rbac, actor, SYNC_RUN, tenant_id)  # None (every tenant): super admins
        known = self._directory() + self._connections_of(None if tenant_id is None else {tenant_id})
        return _targets.request_sync(self.db.unit_of_work(), self.sync.engine, known, Actor.from_dict(actor), targets,
                                     tenant_id)

    # --- the directory's settings, Proxmox realms ------------------------------------------------

    @rpc
    def get_directory_settings(self):
        return directory_settings.get_directory_settings(self.db.unit_of_work())

    @rpc
    def put_directory_settings(self, actor, fields):
        return directory_settings.put_directory_settings(self.db.unit_of_work(), self.rbac, self.sync.box,
                                                         Actor.from_dict(actor), fields)

    @rpc
    def configure_realm(self, actor, connection_id, tenant_id=None, server=None, port=None, mode=None):
        require_permission(self.rbac, actor, CONNECTION_MANAGE, tenant_id)  # None (every tenant): super admins
        return directory_settings.configure_realm(self.db.unit_of_work(), self.tenancy, self.sync.box,
                                                  self.sync.directory_settings, Actor.from_dict(actor), connection_id,
                                                  tenant_id, server, port, mode)

    # --- inventory ------------------------------------------------------------------

    @rpc
    def inventory(self, kind, tenant_id, scope=None, filters=None, limit=50, cursor=None):
        return guests.inventory_page(self.db.unit_of_work(), kind, tenant_id, scope, filters, limit, cursor)

    @rpc
    def guest(self, tenant_id, vm_id):
        return guests.guest(self.db.unit_of_work(), tenant_id, vm_id)

    @rpc
    def inventory_status(self, tenant_id, limit=50, cursor=None):
        return guests.inventory_status(self.db.unit_of_work(), tenant_id, limit, cursor)

    @rpc
    def vm_action(self, actor, tenant_id, vm_id, action, timeout=pve.STEP_TIMEOUT):
        return guests.vm_action(self.db.unit_of_work(), self.tenancy, Actor.from_dict(actor), tenant_id, vm_id, action,
                                timeout)

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



def _tenant_of_connection(payload) -> str | None:
    """The tenant a connection event places its connection in (connection_updated names none)."""
    if isinstance(payload, tenancy_events.ConnectionReassigned):
        return payload.to
    if isinstance(payload, tenancy_events.ConnectionCreated):
        return payload.tenant_id
    return None
