"""Bodies of /api/v1/inventory: nodes, VMs and containers, storages, power actions."""
from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Float, Integer, Nested, String
from apiflask.validators import Length, OneOf

from gateway.schemas import JsonBoolean, PageQuery, page_of

ISO = {"format": "date-time"}


class InventoryQuery(PageQuery):
    connection_id = String(validate=Length(1, 36))
    node = String(validate=Length(1, 64))
    status = String(validate=Length(1, 32), metadata={"description": "e.g. online/offline (nodes), running/"
                                                                     "stopped (guests), available (storages)"})


class VmQuery(InventoryQuery):
    type = String(validate=OneOf(["qemu", "lxc"]), metadata={"description": "qemu (VMs) or lxc (containers)"})


class _Item(Schema):
    connection_id = String()
    node = String()
    status = String(allow_none=True)
    disk = Integer(metadata={"description": "bytes used"})
    maxdisk = Integer(metadata={"description": "bytes"})
    seen_at = String(metadata={**ISO, "description": "when the poll that saw it ran"})


class NodeOut(_Item):
    id = String(metadata={"description": "<connection_id>.<node>"})
    cpu = Float(metadata={"description": "utilisation, 0..1"})
    maxcpu = Float()
    mem = Integer()
    maxmem = Integer()
    uptime = Integer(metadata={"description": "seconds"})
    level = String()


class VmOut(_Item):
    id = String(metadata={"description": "<connection_id>.<vmid>: the id of power actions"})
    vmid = Integer()
    type = String(metadata={"description": "qemu or lxc"})
    name = String(allow_none=True)
    cpu = Float()
    maxcpu = Float()
    mem = Integer()
    maxmem = Integer()
    uptime = Integer()
    template = JsonBoolean()
    tags = String()
    pool = String()
    lock = String()
    hastate = String()


class VmItemOut(VmOut):
    """A guest in a list (own class: apispec warns when a response schema is also nested)."""


class StorageOut(_Item):
    id = String(metadata={"description": "<connection_id>.<node>.<storage>"})
    storage = String()
    content = String()
    shared = JsonBoolean()
    plugintype = String()


NodePageOut = page_of(NodeOut, "NodePage")
VmPageOut = page_of(VmItemOut, "VmPage")
StoragePageOut = page_of(StorageOut, "StoragePage")


class VmActionOut(Schema):
    vm = String()
    action = String()
    task = String(metadata={"description": "the Proxmox VE task (UPID) carrying the action out"})


class PollErrorOut(Schema):
    code = String(metadata={"description": "unreachable, timeout, tls_verification_failed, tls_fingerprint_mismatch, "
                                           "authentication_failed, permission_denied or proxmox_error"})
    message = String()


class PollStatusOut(Schema):
    connection_id = String()
    polled_at = String(allow_none=True, metadata=ISO)
    succeeded_at = String(allow_none=True, metadata={**ISO, "description": "the poll the inventory shows"})
    error = Nested(PollErrorOut, allow_none=True, metadata={"description": "why the last poll failed"})


PollStatusPageOut = page_of(PollStatusOut, "PollStatusPage")
