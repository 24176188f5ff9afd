"""The inventory's pure rules (resources -> rows -> API items, scope and filters) and its network
steps against the schema-checked stand-in's cluster (state, PVE's answers and refusals)."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from services.proxmox_sync import inventory, pve
from tests.pve_standin import PveStandin
from tests.pve_standin.cluster import add_guest, add_node, add_storage, guest

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
CONN = "6f1c2d3e-0000-4000-8000-000000000001"
TOKEN_ID, TOKEN_SECRET = "gatehouse@pve!inv", "inventory-token-secret"

RESOURCES = [
    {"id": "node/n1", "type": "node", "node": "n1", "status": "online", "cpu": 0.1, "maxcpu": 8, "mem": 1,
     "maxmem": 2, "uptime": 5, "level": ""},
    {"id": "node/n2", "type": "node", "node": "n2", "status": "offline"},
    {"id": "qemu/100", "type": "qemu", "node": "n1", "vmid": 100, "name": "web", "status": "running",
     "template": 0, "maxmem": 4, "mem": 1, "cpu": 0.5, "maxcpu": 2, "uptime": 60},
    {"id": "lxc/200", "type": "lxc", "node": "n2", "vmid": 200, "name": "db", "status": "stopped", "template": 1},
    {"id": "storage/n1/local.lvm", "type": "storage", "node": "n1", "storage": "local.lvm", "status": "available",
     "shared": 0, "content": "images", "plugintype": "lvmthin", "disk": 1, "maxdisk": 10},
    {"id": "sdn/n1/localnetwork", "type": "sdn", "node": "n1", "sdn": "localnetwork", "status": "ok"},
    {"id": "pool/ops", "type": "pool", "pool": "ops"},
]


def rows(resources=RESOURCES, connection_id=CONN):
    return [SimpleNamespace(connection_id=connection_id, tenant_id="t", **row)
            for row in inventory.rows_of(resources, NOW)]


def by_kind(items, *kinds):
    return [row for row in items if row.kind in kinds]


# --- shaping ---------------------------------------------------------------------------------------


def test_resources_become_one_row_per_node_guest_and_storage():
    shaped = {(row["kind"], row["key"]): row for row in inventory.rows_of(RESOURCES + RESOURCES[:1], NOW)}
    assert set(shaped) == {("node", "n1"), ("node", "n2"), ("qemu", "100"), ("lxc", "200"),
                           ("storage", "n1/local.lvm")}  # sdn and pool are left out, repeats kept once
    web = shaped[("qemu", "100")]
    assert (web["vmid"], web["name"], web["node"], web["status"]) == (100, "web", "n1", "running")
    assert web["data"] == {"cpu": 0.5, "maxcpu": 2, "mem": 1, "maxmem": 4, "uptime": 60, "template": 0}
    assert shaped[("storage", "n1/local.lvm")]["name"] == "local.lvm"
    assert shaped[("node", "n2")]["data"] == {}


def test_items_carry_ids_with_their_connection():
    items = {row.kind: inventory.item_of(row) for row in rows()}
    assert items["node"]["id"] in (f"{CONN}.n1", f"{CONN}.n2")
    vm = inventory.item_of(by_kind(rows(), "qemu")[0])
    assert vm == {"id": f"{CONN}.100", "connection_id": CONN, "node": "n1", "status": "running", "vmid": 100,
                  "type": "qemu", "name": "web", "cpu": 0.5, "maxcpu": 2, "mem": 1, "maxmem": 4, "uptime": 60,
                  "template": False, "seen_at": "2026-11-24T12:00:00Z"}
    assert inventory.item_of(by_kind(rows(), "lxc")[0])["template"] is True
    storage = inventory.item_of(by_kind(rows(), "storage")[0])
    assert storage["id"] == f"{CONN}.n1.local.lvm" and storage["storage"] == "local.lvm"
    assert storage["shared"] is False


@pytest.mark.parametrize("vm_id, parsed", [
    (f"{CONN}.100", (CONN, 100)), ("c.999999999", ("c", 999999999)),
    ("100", None), (f"{CONN}.", None), (".100", None), (f"{CONN}.1e3", None), (f"{CONN}.-1", None),
    (f"{CONN}.１００", None), (f"{CONN}.1000000000", None), ("", None), (None, None),
])
def test_guest_ids_parse_strictly(vm_id, parsed):
    assert inventory.parse_guest_id(vm_id) == parsed


# --- scope and filters -----------------------------------------------------------------------------


def keys(items):
    return sorted((row.kind, row.key) for row in items)


def test_an_empty_scope_sees_everything():
    assert keys(inventory.visible(rows(), {})) == keys(rows())
    assert keys(inventory.visible(rows(), None)) == keys(rows())


def test_a_node_scope_hides_the_other_nodes_and_what_is_on_them():
    seen = keys(inventory.visible(rows(), {"nodes": ["n1"]}))
    assert seen == [("node", "n1"), ("qemu", "100"), ("storage", "n1/local.lvm")]


def test_a_vm_scope_narrows_guests_only():
    seen = keys(inventory.visible(rows(), {"vms": ["100"]}))
    assert ("qemu", "100") in seen and ("lxc", "200") not in seen
    assert ("node", "n2") in seen and ("storage", "n1/local.lvm") in seen


def test_connection_and_storage_scopes():
    other = rows(connection_id="other")
    assert keys(inventory.visible(rows() + other, {"connections": ["other"]})) == keys(other)
    assert keys(by_kind(inventory.visible(rows(), {"storages": ["local"]}), "storage")) == []
    assert keys(by_kind(inventory.visible(rows(), {"storages": ["local.lvm"]}), "storage")) == [
        ("storage", "n1/local.lvm")]


def test_filters_match_exact_values_and_ignore_none():
    assert keys(inventory.visible(rows(), {}, {"status": "running"})) == [("qemu", "100")]
    assert keys(inventory.visible(rows(), {}, {"type": "lxc", "node": "n2"})) == [("lxc", "200")]
    assert keys(inventory.visible(rows(), {}, {"node": "n1", "status": None})) == [
        ("node", "n1"), ("qemu", "100"), ("storage", "n1/local.lvm")]
    assert inventory.visible(rows(), {}, {"connection_id": "nope"}) == []
    assert inventory.visible(rows(), {"nodes": ["n2"]}, {"status": "running"}) == []


def test_every_action_has_its_permission():
    assert inventory.ACTIONS == {"start": "vm.start", "stop": "vm.stop", "shutdown": "vm.stop",
                                 "reboot": "vm.restart"}


# --- the stand-in's cluster, through proxmoxer -----------------------------------------------------------


@pytest.fixture()
def standin():
    with PveStandin() as server:
        server.add_token(TOKEN_ID, TOKEN_SECRET)
        add_node(server, "n1")
        add_node(server, "n2", status="offline")
        add_guest(server, "n1", 100, name="web")
        add_guest(server, "n1", 101, kind="lxc", name="ct", status="running")
        add_storage(server, "n1", "local-lvm", plugintype="lvmthin")
        yield server


def endpoint_of(server) -> pve.Endpoint:
    return pve.Endpoint(url=server.url, verify_tls=True, ca_pem=server.ca_pem, fingerprint=None,
                        auth_method="token", login=TOKEN_ID, secret=TOKEN_SECRET)


def test_a_poll_reads_the_standins_cluster(standin):
    polled = {(row["kind"], row["key"]): row for row in inventory.poll_connection(endpoint_of(standin), NOW)}
    assert set(polled) == {("node", "n1"), ("node", "n2"), ("qemu", "100"), ("lxc", "101"),
                           ("storage", "n1/local-lvm")}
    assert polled[("lxc", "101")]["status"] == "running" and polled[("node", "n2")]["status"] == "offline"
    assert polled[("storage", "n1/local-lvm")]["data"]["plugintype"] == "lvmthin"


def test_the_standin_filters_resources_by_type_and_refuses_unknown_types(standin):
    import requests
    headers = {"Authorization": f"PVEAPIToken={TOKEN_ID}={TOKEN_SECRET}"}
    url = f"{standin.url}/api2/json/cluster/resources"
    vms = requests.get(url, params={"type": "vm"}, headers=headers, verify=False, timeout=5).json()["data"]
    assert sorted(r["id"] for r in vms) == ["lxc/101", "qemu/100"]
    refused = requests.get(url, params={"type": "disk"}, headers=headers, verify=False, timeout=5)
    assert refused.status_code == 400 and "type" in refused.json()["errors"]
    nodes = requests.get(f"{standin.url}/api2/json/nodes", headers=headers, verify=False, timeout=5).json()["data"]
    assert {n["node"]: n["status"] for n in nodes} == {"n1": "online", "n2": "offline"}


def test_power_actions_change_the_standins_state_and_answer_a_upid(standin):
    endpoint = endpoint_of(standin)
    task = inventory.power(endpoint, "qemu", "n1", 100, "start")
    assert task.startswith("UPID:n1:") and ":qmstart:100:" in task
    assert guest(standin, 100)["status"] == "running"
    assert ":vzshutdown:101:" in inventory.power(endpoint, "lxc", "n1", 101, "shutdown")
    assert guest(standin, 101)["status"] == "stopped"
    inventory.power(endpoint, "qemu", "n1", 100, "reboot")
    inventory.power(endpoint, "qemu", "n1", 100, "stop")
    assert guest(standin, 100)["status"] == "stopped"


def test_power_refusals_are_proxmox_words(standin):
    endpoint = endpoint_of(standin)
    with pytest.raises(pve.PveFailure) as running:
        inventory.power(endpoint, "lxc", "n1", 101, "start")
    assert running.value.code == inventory.ACTION_REFUSED and "CT 101 already running" in running.value.message
    with pytest.raises(pve.PveFailure) as stopped:
        inventory.power(endpoint, "qemu", "n1", 100, "shutdown")
    assert "VM 100 not running" in stopped.value.message
    with pytest.raises(pve.PveFailure) as elsewhere:
        inventory.power(endpoint, "qemu", "n2", 100, "start")  # the guest is on n1
    assert "nodes/n2/qemu-server/100.conf' does not exist" in elsewhere.value.message
    assert guest(standin, 100)["status"] == "stopped"


def test_power_against_a_stopped_standin_is_unreachable(standin):
    endpoint = endpoint_of(standin)
    standin.stop()
    with pytest.raises(pve.PveFailure) as gone:
        inventory.power(endpoint, "qemu", "n1", 100, "start", timeout=2)
    assert gone.value.code == pve.UNREACHABLE


# --- storing polls -------------------------------------------------------------------------------------


@pytest.fixture()
def db(tmp_path):
    from kernel.db import ServiceDatabase
    from services.proxmox_sync import storage
    database = ServiceDatabase("proxmox_sync", f"sqlite:///{tmp_path / 'inv.db'}", storage.metadata)
    storage.metadata.create_all(database.engine)
    yield database
    database.dispose()


def saved(db, started_at, resources=None, failure=None):
    from services.proxmox_sync.poller import save_poll
    with db.unit_of_work() as uow:
        rows = inventory.rows_of(resources, started_at) if resources is not None else None
        save_poll(uow, CONN, "t", started_at, rows, failure)
        uow.commit()


def stored(db) -> dict:
    from services.proxmox_sync import storage
    with db.unit_of_work() as uow:
        rows = storage.inventory_rows(uow.session, "t", inventory.GUESTS + (inventory.NODE, inventory.STORAGE))
        status = inventory.status_of(uow.session.get(storage.InventoryStatus, CONN))
        return {"keys": keys(rows), "status": status}


def test_a_poll_replaces_the_rows_and_a_failed_one_keeps_them(db):
    later = NOW.replace(minute=1)
    saved(db, NOW, RESOURCES)
    saved(db, later, RESOURCES[:3])  # lxc 200 and the storage are gone
    assert stored(db)["keys"] == [("node", "n1"), ("node", "n2"), ("qemu", "100")]
    saved(db, NOW.replace(minute=2), failure=pve.PveFailure(pve.UNREACHABLE, "cannot be reached"))
    after = stored(db)
    assert after["keys"] == [("node", "n1"), ("node", "n2"), ("qemu", "100")]
    assert after["status"]["error"] == {"code": "unreachable", "message": "cannot be reached"}
    assert after["status"]["succeeded_at"] == "2026-11-24T12:01:00Z"
    assert after["status"]["polled_at"] == "2026-11-24T12:02:00Z"


def test_a_poll_that_started_before_the_stored_one_changes_nothing(db):
    saved(db, NOW.replace(minute=5), RESOURCES[:3])
    saved(db, NOW, RESOURCES)  # began earlier, finished later: an older state
    assert stored(db)["keys"] == [("node", "n1"), ("node", "n2"), ("qemu", "100")]
    assert stored(db)["status"]["polled_at"] == "2026-11-24T12:05:00Z"
