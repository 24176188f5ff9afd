"""The Proxmox VE inventory: what /cluster/resources answers, shaped into rows and API items,
filtered by a user's scope, and the network steps of a poll and of a power action.

API ids carry their connection, since VMIDs and node names repeat across clusters:
a node is "<connection_id>.<node>", a guest "<connection_id>.<vmid>", a storage
"<connection_id>.<node>.<storage>" (connection ids are UUIDs and node names have no dots).
"""
from __future__ import annotations

from datetime import datetime

from proxmoxer.core import ResourceException

from contracts.proxmox_sync import ACTIONS  # noqa: F401 - shared, re-exported
from contracts.rbac import in_scope
from kernel.db import iso
from services.proxmox_sync import pve

NODE, QEMU, LXC, STORAGE = "node", "qemu", "lxc", "storage"
GUESTS = (QEMU, LXC)
# The lists of the API and the row kinds each shows.
LISTS = {"nodes": (NODE,), "vms": GUESTS, "storages": (STORAGE,)}
# Proxmox VE refused the action itself (e.g. starting a running guest): the guest's state, not the link.
ACTION_REFUSED = "action_refused"

# Figures kept besides the columns, per kind (what /cluster/resources tells of each).
FIGURES = {
    NODE: ("cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk", "uptime", "level"),
    QEMU: ("cpu", "maxcpu", "mem", "maxmem", "disk", "maxdisk", "uptime", "template", "tags", "pool", "lock",
           "hastate"),
    STORAGE: ("disk", "maxdisk", "content", "shared", "plugintype"),
}
FIGURES[LXC] = FIGURES[QEMU]


# --- resources -> rows -----------------------------------------------------------------------------


def rows_of(resources: list[dict], seen_at: datetime) -> list[dict]:
    """The inventory rows (InventoryItem's columns but connection and tenant) of /cluster/resources;
    other types (sdn, pool, network) are left out."""
    rows = {}
    for resource in resources:
        kind = resource.get("type")
        if kind not in FIGURES or not resource.get("node"):
            continue
        row = {"kind": kind, "node": resource["node"], "status": resource.get("status"), "seen_at": seen_at,
               "vmid": None, "name": None,
               "data": {figure: resource[figure] for figure in FIGURES[kind] if resource.get(figure) is not None}}
        if kind == NODE:
            row.update(key=resource["node"], name=resource["node"])
        elif kind == STORAGE:
            row.update(key=f"{resource['node']}/{resource['storage']}", name=resource["storage"])
        else:
            row.update(key=str(resource["vmid"]), vmid=int(resource["vmid"]), name=resource.get("name"))
        rows[(kind, row["key"])] = row  # one row per key, whatever the answer repeats
    return list(rows.values())


# --- rows -> API -----------------------------------------------------------------------------------


def item_id(row) -> str:
    if row.kind in GUESTS:
        return f"{row.connection_id}.{row.vmid}"
    if row.kind == STORAGE:
        return f"{row.connection_id}.{row.node}.{row.name}"
    return f"{row.connection_id}.{row.node}"


def parse_guest_id(vm_id: str) -> tuple[str, int] | None:
    """(connection_id, vmid) of "<connection_id>.<vmid>", or None when it is not one."""
    connection_id, dot, vmid = (vm_id or "").partition(".")
    if not dot or not connection_id or not (vmid.isascii() and vmid.isdigit()) or len(vmid) > 9:
        return None
    return connection_id, int(vmid)


def resource_of(row) -> dict:
    """The row as rbac's scope rules name it (services.rbac.domain.in_scope)."""
    resource = {"connection": row.connection_id, "node": row.node}
    if row.kind in GUESTS:
        resource["vm"] = str(row.vmid)
    elif row.kind == STORAGE:
        resource["storage"] = row.name
    return resource


def item_of(row) -> dict:
    """A row as the API shows it."""
    figures = dict(row.data or {})
    item = {"id": item_id(row), "connection_id": row.connection_id, "node": row.node, "status": row.status}
    if row.kind in GUESTS:
        figures["template"] = bool(figures.get("template"))
        item.update(vmid=row.vmid, type=row.kind, name=row.name)
    elif row.kind == STORAGE:
        figures["shared"] = bool(figures.get("shared"))
        item.update(storage=row.name)
    return {**item, **figures, "seen_at": iso(row.seen_at)}


def status_of(status) -> dict:
    """How a connection's polls went (an InventoryStatus), as the API shows it."""
    error = {"code": status.error_code, "message": status.error_message} if status.error_code else None
    return {"connection_id": status.connection_id, "polled_at": iso(status.polled_at),
            "succeeded_at": iso(status.succeeded_at), "error": error}


def visible(rows, scope: dict | None, filters: dict | None = None) -> list:
    """The rows the scope lets a user see that match the filters (connection_id, node, status,
    type: each an exact value; absent or None: any)."""
    wanted = {key: value for key, value in (filters or {}).items() if value is not None}
    return [row for row in rows if in_scope(scope, resource_of(row)) and _matches(row, wanted)]


def _matches(row, wanted: dict) -> bool:
    actual = {"connection_id": row.connection_id, "node": row.node, "status": row.status, "type": row.kind}
    return all(actual.get(key) == value for key, value in wanted.items())


# --- the network steps -------------------------------------------------------------------------------


def poll_connection(endpoint: pve.Endpoint, seen_at: datetime, timeout: float = pve.STEP_TIMEOUT) -> list[dict]:
    """The connection's inventory rows now; PveFailure when it cannot be read."""
    with pve.session(endpoint, timeout) as api:
        return rows_of(api.cluster.resources.get(), seen_at)


def power(endpoint: pve.Endpoint, kind: str, node: str, vmid: int, action: str,
          timeout: float = pve.STEP_TIMEOUT) -> str:
    """POST /nodes/{node}/{qemu|lxc}/{vmid}/status/{action}: the task's UPID. PveFailure with
    ACTION_REFUSED when Proxmox VE refuses the action (its reason in the message), else the
    link's failure code."""
    with pve.session(endpoint, timeout) as api:
        try:
            return api.nodes(node)(kind)(vmid).status(action).post()
        except ResourceException as error:
            # Proxmox VE's "die" answers 500 with its reason in its own words, e.g. "VM 100 already running".
            if error.status_code == 500:
                reason = str(error.content or "refused").strip()[:200]  # proxmoxer keeps the reason phrase here
                raise pve.PveFailure(ACTION_REFUSED, f"Proxmox VE refused to {action} {kind} {vmid}: {reason}") \
                    from None
            raise
