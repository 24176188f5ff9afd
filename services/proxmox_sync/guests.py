"""The inventory as the API shows it (nodes, VMs and containers, storages of a tenant's connections)
and power actions on guests.

The gateway checks permissions and scope with rbac before asking; answers here are
confined to `tenant_id` (another tenant's guest is NotFound, never Forbidden). Use cases take a
unit of work not yet entered and enter it themselves, never across a network step; `tenancy` is
the service's RpcProxy("tenancy").
"""
from __future__ import annotations

from kernel import paging
from kernel.envelope import utc_now
from kernel.errors import BadGateway, Conflict, NotFound, ValidationFailed
from services.proxmox_sync import events, inventory, pve, storage
from services.proxmox_sync.poller import save_poll

MAX_PAGE = 200


def inventory_page(uow, kind, tenant_id, scope=None, filters=None, limit=50, cursor=None) -> dict:
    """A page of the tenant's "nodes", "vms" or "storages" that `scope` (rbac's, empty lists:
    everything) covers and `filters` (connection_id, node, status, type) match."""
    if kind not in inventory.LISTS:
        raise ValidationFailed("Unknown inventory list.", details={"kind": f"one of {', '.join(inventory.LISTS)}"})
    filters = filters or {}
    offset = paging.offset_of(cursor)
    limit = max(1, min(int(limit), MAX_PAGE))
    with uow:
        rows = inventory.visible(storage.inventory_rows(uow.session, tenant_id, inventory.LISTS[kind],
                                                        filters.get("connection_id")), scope, filters)
        items = [inventory.item_of(row) for row in rows[offset:offset + limit]]
    return paging.page_answer(items, offset, len(rows))


def guest(uow, tenant_id, vm_id) -> dict:
    """One VM or container of the tenant by its API id "<connection_id>.<vmid>"; NotFound otherwise."""
    with uow:
        return inventory.item_of(guest_row(uow.session, tenant_id, vm_id))


def inventory_status(uow, tenant_id, limit=50, cursor=None) -> dict:
    """How the last poll of each of the tenant's connections went, a page of them."""
    with uow:
        statuses = [inventory.status_of(status) for status in storage.inventory_statuses(uow.session, tenant_id)]
    return paging.page(statuses, max(1, min(int(limit), MAX_PAGE)), cursor)


def vm_action(uow, tenancy, actor, tenant_id, vm_id, action, timeout=pve.STEP_TIMEOUT) -> dict:
    """start, stop, shutdown or reboot a guest of the tenant through Proxmox VE: {"vm", "action",
    "task"} (the task's UPID). Audited with its outcome; the connection's inventory is read again.
    A refusal of Proxmox VE (e.g. starting a running guest) is a Conflict `action_refused`; a
    failure to reach it a BadGateway with the failure code (unreachable, timeout, ...)."""
    if action not in inventory.ACTIONS:
        raise unknown_action(action)
    with uow:
        found = inventory.item_of(guest_row(uow.session, tenant_id, vm_id))
    connection_id = found["connection_id"]
    # tenancy is the authority on ownership: the rows may predate a reassignment.
    credentials = tenancy.connection_credentials(connection_id)
    if credentials["tenant_id"] != tenant_id:
        raise no_such_guest(vm_id)
    endpoint = pve.Endpoint.from_credentials(credentials)
    step = float(timeout)
    try:
        task = inventory.power(endpoint, found["type"], found["node"], found["vmid"], action, step)
    except pve.PveFailure as failure:
        with uow:
            uow.emit(events.vm_action(actor, tenant_id, found, action, failure=failure.as_dict()))
            uow.commit()
        error = Conflict if failure.code == inventory.ACTION_REFUSED else BadGateway
        raise error(failure.message, code=failure.code, details={"vm": vm_id, "action": action}) from None
    rows, poll_failure, started_at = None, None, utc_now()
    try:
        rows = inventory.poll_connection(endpoint, started_at, step)
    except pve.PveFailure as failure:
        poll_failure = failure
    with uow:
        save_poll(uow, connection_id, tenant_id, started_at, rows, poll_failure)
        uow.emit(events.vm_action(actor, tenant_id, found, action, task=task))
        uow.commit()
    return {"vm": found["id"], "action": action, "task": task}


def guest_row(session, tenant_id, vm_id):
    parsed = inventory.parse_guest_id(vm_id)
    row = storage.guest_row(session, tenant_id, *parsed) if parsed else None
    if row is None:
        raise no_such_guest(vm_id)
    return row


def unknown_action(action) -> NotFound:
    return NotFound(f"No action {action!r}: use one of {', '.join(inventory.ACTIONS)}.", code="unknown_action",
                    details={"action": f"one of {', '.join(inventory.ACTIONS)}"})


def no_such_guest(vm_id) -> NotFound:
    return NotFound("No such VM or container.", code="vm_not_found", details={"vm_id": vm_id})
