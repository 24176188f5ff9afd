"""proxmox_sync: propagation to LDAP and Proxmox VE (the sync lands with issue 8); the
connection test; the inventory of every connection and VM/CT power actions."""
from nameko.rpc import RpcProxy

from kernel import paging
from kernel.consumer import on_event
from kernel.envelope import Actor, utc_now
from kernel.errors import BadGateway, Conflict, NotFound, ValidationFailed
from kernel.service import Database, ServiceBase, rpc
from services.proxmox_sync import events, inventory, pve, storage
from services.proxmox_sync.poller import InventoryPoller, save_poll
from services.tenancy import events as tenancy_events

MAX_PAGE = 200


class ProxmoxSyncService(ServiceBase):
    name = "proxmox_sync"
    db = Database(storage.metadata)
    tenancy = RpcProxy("tenancy")
    poller = InventoryPoller()

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
        storage.move_connection(uow.session, event.resource.id, event.data["to"])
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


def unknown_action(action) -> NotFound:
    return NotFound(f"No action {action!r}: use one of {', '.join(inventory.ACTIONS)}.", code="unknown_action",
                    details={"action": f"one of {', '.join(inventory.ACTIONS)}"})


def _no_such_guest(vm_id) -> NotFound:
    return NotFound("No such VM or container.", code="vm_not_found", details={"vm_id": vm_id})
