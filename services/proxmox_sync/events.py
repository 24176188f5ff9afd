"""Every event proxmox_sync publishes, in one place."""
from __future__ import annotations

from kernel.envelope import Actor, Event, Resource

# --- inventory ---------------------------------------------------------------------------------

VM_ACTION = "proxmox_sync.vm_action"


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


ALL = (VM_ACTION,)
