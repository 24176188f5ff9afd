"""/api/v1/inventory: the Proxmox VE nodes, VMs/containers and storages of the active tenant's
connections, as proxmox_sync last polled them, and power actions on guests.

Lists show only what the caller's scope covers (rbac's scope_of), and need the view permission
of their kind. A power action needs its permission (vm.start; vm.stop for stop and shutdown;
vm.restart for reboot) for that guest, scope included: 403 naming the permission otherwise. A
guest of another tenant is 404, never 403.
"""
from __future__ import annotations

from apiflask import APIBlueprint
from flask import current_app

from gateway.auth import actor, current_principal, forbid, holds, requires
from gateway.schemas import PageQuery
from gateway.schemas.inventory import (
    InventoryQuery,
    NodePageOut,
    PollStatusPageOut,
    StoragePageOut,
    VmActionOut,
    VmOut,
    VmPageOut,
    VmQuery,
)
from kernel.errors import NotFound
from contracts.proxmox_sync import ACTIONS

bp = APIBlueprint("inventory", __name__, url_prefix="/api/v1/inventory", tag="Inventory")

SIGNED_IN = {401: "Not signed in"}
FILTERS = ("connection_id", "node", "status", "type")
# A power action's network steps (credentials, the action, reading the inventory again) end within the RPC timeout.
MAX_STEP = 5.0


def _page(kind: str, query: dict) -> dict:
    principal = current_principal()
    filters = {name: query.get(name) for name in FILTERS if query.get(name) is not None}
    with current_app.extensions["rpc"].client() as rpc:
        scope = rpc.rbac.scope_of(principal.user_id, principal.tenant_id)
        return rpc.proxmox_sync.inventory(kind, principal.tenant_id, scope, filters, query["limit"],
                                          query.get("cursor"))


def _guest_resource(guest: dict) -> dict:
    """The guest as rbac's scopes name it."""
    return {"connection": guest["connection_id"], "node": guest["node"], "vm": str(guest["vmid"])}


@bp.get("/nodes")
@requires("node.view")
@bp.input(InventoryQuery, location="query", arg_name="query")
@bp.output(NodePageOut)
@bp.doc(summary="Nodes of the active tenant's connections", description=(
    "Needs `node.view`; only nodes the caller's scope covers. Filters: `connection_id`, `node`, `status`."),
    responses={**SIGNED_IN, 403: "Missing permission node.view"})
def list_nodes(query):
    return _page("nodes", query)


@bp.get("/vms")
@requires("vm.view")
@bp.input(VmQuery, location="query", arg_name="query")
@bp.output(VmPageOut)
@bp.doc(summary="VMs and containers of the active tenant's connections", description=(
    "Needs `vm.view`; only guests the caller's scope covers (connections, nodes, vms). Filters: `connection_id`, "
    "`node`, `status`, `type` (qemu or lxc)."),
    responses={**SIGNED_IN, 403: "Missing permission vm.view"})
def list_vms(query):
    return _page("vms", query)


@bp.get("/storages")
@requires("storage.view")
@bp.input(InventoryQuery, location="query", arg_name="query")
@bp.output(StoragePageOut)
@bp.doc(summary="Storages of the active tenant's connections", description=(
    "Needs `storage.view`; only storages the caller's scope covers. Filters: `connection_id`, `node`, `status`."),
    responses={**SIGNED_IN, 403: "Missing permission storage.view"})
def list_storages(query):
    return _page("storages", query)


@bp.get("/connections")
@requires("connection.view")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(PollStatusPageOut)
@bp.doc(summary="How the inventory polls of the active tenant's connections went", description=(
    "Needs `connection.view`. A failed poll keeps the last inventory: `succeeded_at` says how old it is, `error` "
    "why the last poll failed."),
    responses={**SIGNED_IN, 403: "Missing permission connection.view"})
def poll_status(query):
    with current_app.extensions["rpc"].client() as rpc:
        return rpc.proxmox_sync.inventory_status(current_principal().tenant_id, query["limit"], query.get("cursor"))


@bp.get("/vms/<string:vm_id>")
@requires("vm.view")
@bp.output(VmOut)
@bp.doc(summary="One VM or container", description=(
    "Needs `vm.view` covering the guest (else 404, as it is in no list of the caller)."),
    responses={**SIGNED_IN, 403: "Missing permission vm.view", 404: "No such guest in the active tenant or scope"})
def get_vm(vm_id):
    principal = current_principal()
    with current_app.extensions["rpc"].client() as rpc:
        guest = rpc.proxmox_sync.guest(principal.tenant_id, vm_id)
        if not rpc.rbac.authorize(principal.user_id, "vm.view", principal.tenant_id, _guest_resource(guest)):
            raise NotFound("No such VM or container.", code="vm_not_found", details={"vm_id": vm_id})
    return guest


@bp.post("/vms/<string:vm_id>/<string:action>")
@requires()
@bp.output(VmActionOut, status_code=202, description="Proxmox VE took the action on; `task` is its UPID")
@bp.doc(summary="Start, stop, shut down or reboot a VM or container", description=(
    "`action`: `start` (needs `vm.start`), `stop` or `shutdown` (`vm.stop`), `reboot` (`vm.restart`), for this "
    "guest (scope included). Audited as `vm_action` with its outcome. A refusal of Proxmox VE (e.g. starting a "
    "running guest) is 409 `action_refused`; failing to reach it 502 with the failure code (`unreachable`, "
    "`timeout`, `tls_verification_failed`, `authentication_failed`, `permission_denied`, `proxmox_error`, ...)."),
    responses={**SIGNED_IN, 403: "Missing the action's permission for this guest",
               404: "No such guest in the active tenant, or no such action", 409: "Proxmox VE refused the action",
               502: "Proxmox VE could not be reached or failed"})
def vm_action(vm_id, action):
    permission = ACTIONS.get(action)
    if permission is None:
        raise NotFound(f"No action {action!r}: use one of {', '.join(ACTIONS)}.", code="unknown_action",
                       details={"action": f"one of {', '.join(ACTIONS)}"})
    if not holds(permission):
        forbid(permission, f"This needs the permission {permission}.")
    principal = current_principal()
    pool = current_app.extensions["rpc"]
    with pool.client() as rpc:
        guest = rpc.proxmox_sync.guest(principal.tenant_id, vm_id)
        allowed = rpc.rbac.authorize(principal.user_id, permission, principal.tenant_id, _guest_resource(guest))
    if not allowed:
        forbid(permission, f"This needs the permission {permission} for this guest: it is outside your scope.",
               {"vm": vm_id})
    step = max(1.0, min(MAX_STEP, pool.timeout / 4))
    with pool.client() as rpc:
        return rpc.proxmox_sync.vm_action(actor().__dict__, principal.tenant_id, vm_id, action, step), 202
