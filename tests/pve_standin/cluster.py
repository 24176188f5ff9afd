"""The stand-in's cluster: inventory (/cluster/resources, /nodes) and VM/CT power actions.

State lives in `standin.state.data["cluster"]`: nodes by name, guests (qemu VMs and lxc
containers) by VMID (unique in a cluster, as in Proxmox VE) and storages by (node, storage).
Tests build it with add_node / add_guest / add_storage and read it back to see what a power
action did. Answers have Proxmox VE's shape; refusals its status and words (a guest that is not
on the node: 500 "Configuration file ... does not exist"; starting a running guest: 500).
"""
from __future__ import annotations

import secrets
import time

from tests.pve_standin import Call, PveError, handler

GIB = 1024 ** 3
GUEST_KINDS = ("qemu", "lxc")
# Where Proxmox VE keeps a guest's configuration, as its "does not exist" error names it.
CONFIG_DIRS = {"qemu": "qemu-server", "lxc": "lxc"}
POWER_ACTIONS = ("start", "stop", "shutdown", "reboot")


def cluster(standin) -> dict:
    return standin.state.data.setdefault("cluster", {"nodes": {}, "guests": {}, "storages": {}})


# --- building the world ----------------------------------------------------------------------------


def add_node(standin, name: str, status: str = "online", **fields) -> dict:
    node = {"node": name, "status": status, "maxcpu": 8, "cpu": 0.05, "maxmem": 64 * GIB, "mem": 8 * GIB,
            "maxdisk": 100 * GIB, "disk": 10 * GIB, "uptime": 86400 if status == "online" else 0, "level": "",
            **fields}
    cluster(standin)["nodes"][name] = node
    return node


def add_guest(standin, node: str, vmid: int, kind: str = "qemu", name: str | None = None,
              status: str = "stopped", **fields) -> dict:
    if kind not in GUEST_KINDS:
        raise ValueError(f"kind must be one of {GUEST_KINDS}")
    world = cluster(standin)
    if node not in world["nodes"]:
        raise ValueError(f"no node {node!r}: add_node first")
    if vmid in world["guests"]:
        raise ValueError(f"VMID {vmid} is taken")
    guest = {"kind": kind, "node": node, "vmid": int(vmid), "name": name or f"{kind}-{vmid}", "status": status,
             "maxcpu": 2, "maxmem": 2 * GIB, "maxdisk": 32 * GIB, "disk": 0, "template": False, "tags": "",
             **fields}
    world["guests"][int(vmid)] = guest
    return guest


def add_storage(standin, node: str, storage: str, status: str = "available", plugintype: str = "dir",
                content: str = "images,rootdir", shared: bool = False, **fields) -> dict:
    world = cluster(standin)
    if node not in world["nodes"]:
        raise ValueError(f"no node {node!r}: add_node first")
    entry = {"node": node, "storage": storage, "status": status, "plugintype": plugintype, "content": content,
             "shared": shared, "maxdisk": 500 * GIB, "disk": 120 * GIB, **fields}
    world["storages"][(node, storage)] = entry
    return entry


def guest(standin, vmid: int) -> dict | None:
    return cluster(standin)["guests"].get(int(vmid))


# --- answers ---------------------------------------------------------------------------------------


def _node_resource(node: dict) -> dict:
    return {"id": f"node/{node['node']}", "type": "node", **node}


def _guest_resource(entry: dict) -> dict:
    running = entry["status"] == "running"
    fields = {key: value for key, value in entry.items() if key not in ("kind", "started_at")}
    uptime = int(time.time() - entry.get("started_at", time.time())) if running else 0
    return {**fields, "id": f"{entry['kind']}/{entry['vmid']}", "type": entry["kind"],
            "cpu": 0.12 if running else 0, "mem": entry["maxmem"] // 4 if running else 0, "uptime": uptime,
            "template": 1 if entry["template"] else 0}


def _storage_resource(entry: dict) -> dict:
    return {**entry, "id": f"storage/{entry['node']}/{entry['storage']}", "type": "storage",
            "shared": 1 if entry["shared"] else 0}


@handler("GET", "/cluster/resources")
def _resources(pve, call: Call):
    world = cluster(pve)
    wanted = call.params.get("type")
    answer = []
    if wanted in (None, "node"):
        answer += [_node_resource(node) for node in world["nodes"].values()]
    if wanted in (None, "vm"):
        answer += [_guest_resource(entry) for entry in world["guests"].values()]
    if wanted in (None, "storage"):
        answer += [_storage_resource(entry) for entry in world["storages"].values()]
    return answer  # "sdn": none in the stand-in


@handler("GET", "/nodes")
def _nodes(pve, call: Call):
    return [{key: node[key] for key in ("node", "status", "cpu", "maxcpu", "mem", "maxmem", "uptime", "level")}
            for node in cluster(pve)["nodes"].values()]


def _power(kind: str, action: str):
    def act(pve, call: Call) -> str:
        node, vmid = call.path_params["node"], int(call.path_params["vmid"])
        entry = guest(pve, vmid)
        if entry is None or entry["node"] != node or entry["kind"] != kind:
            raise PveError(500, f"Configuration file 'nodes/{node}/{CONFIG_DIRS[kind]}/{vmid}.conf' does not exist")
        what = "VM" if kind == "qemu" else "CT"
        running = entry["status"] == "running"
        if action == "start" and running:
            raise PveError(500, f"{what} {vmid} already running")
        if action != "start" and not running:
            raise PveError(500, f"{what} {vmid} not running")
        if action in ("start", "reboot"):
            entry["status"], entry["started_at"] = "running", time.time()
        else:
            entry["status"] = "stopped"
            entry.pop("started_at", None)
        return _upid(node, f"{kind[0]}m{action}" if kind == "qemu" else f"vz{action}", vmid, call.userid)

    return act


def _upid(node: str, task: str, vmid: int, userid: str | None) -> str:
    """A task id in Proxmox VE's format: UPID:node:pid:pstart:starttime:type:id:user:"""
    return (f"UPID:{node}:{secrets.randbelow(0xFFFFFF):08X}:{secrets.randbelow(0xFFFFFFF):08X}:"
            f"{int(time.time()):08X}:{task}:{vmid}:{userid or 'root@pam'}:")


for _kind in GUEST_KINDS:
    for _action in POWER_ACTIONS:
        handler("POST", f"/nodes/{{node}}/{_kind}/{{vmid}}/status/{_action}")(_power(_kind, _action))
