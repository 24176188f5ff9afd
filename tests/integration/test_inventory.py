"""The Proxmox VE inventory and VM/CT power actions through the gateway, against schema-checked
stand-ins: tenant isolation, scope filtering, permissions, the stand-in's state, audit with the
outcome, and failures (a refusal of Proxmox VE, an unreachable one) that keep the inventory.

Tenants A and B each have a connection to a stand-in of their own; both clusters have a VMID 100.
The test platform polls every second (tests/harness.py).
"""
import pytest

from tests.harness import eventually
from tests.integration.test_connections import TOKEN_ID, TOKEN_SECRET
from tests.integration.test_connections import create as create_connection
from tests.integration.test_isolation import user_in
from tests.integration.test_rbac import assign, error_of
from tests.integration.test_tenancy import new_tenant
from tests.pve_standin import PveStandin
from tests.pve_standin.cluster import add_guest, add_node, add_storage, guest

POLL = 20  # seconds to wait for what a poll shows


def standin() -> PveStandin:
    server = PveStandin().start()
    server.add_token(TOKEN_ID, TOKEN_SECRET)
    return server


@pytest.fixture(scope="module")
def root(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def world(platform, root):
    from uuid import uuid4
    tag = uuid4().hex[:6]
    a, b = new_tenant(root, f"Inv A {tag}"), new_tenant(root, f"Inv B {tag}")
    pve_a, pve_b = standin(), standin()
    add_node(pve_a, "n1")
    add_node(pve_a, "n2")
    add_guest(pve_a, "n1", 100, name="web-a")
    add_guest(pve_a, "n1", 101, name="app-a", status="running")
    add_guest(pve_a, "n2", 200, kind="lxc", name="ct-a")
    add_storage(pve_a, "n1", "local")
    add_storage(pve_a, "n2", "local-lvm", plugintype="lvmthin")
    add_node(pve_b, "b1")
    add_guest(pve_b, "b1", 100, name="web-b")
    add_storage(pve_b, "b1", "local")
    conn_a = create_connection(root, name=f"inv-a-{tag}", url=pve_a.url, ca_pem=pve_a.ca_pem, tenant_id=a["id"])
    conn_b = create_connection(root, name=f"inv-b-{tag}", url=pve_b.url, ca_pem=pve_b.ca_pem, tenant_id=b["id"])
    users = {role: user_in(platform, root, a["id"], f"inv{role[:5]}a{tag}", role)
             for role in ("admin", "viewer", "operator")}
    yield {"tag": tag, "a": a, "b": b, "pve_a": pve_a, "pve_b": pve_b, "conn_a": conn_a["id"], "conn_b": conn_b["id"],
           "admin_a": users["admin"][1], "viewer_a": users["viewer"][1], "operator_a": users["operator"][1],
           "admin_b": user_in(platform, root, b["id"], f"invadminb{tag}", "admin")[1]}
    pve_a.stop()
    pve_b.stop()


def listed(api, kind, **params) -> dict:
    answer = api.get(f"/api/v1/inventory/{kind}", params={"limit": 200, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def ids(api, kind, **params) -> list[str]:
    return sorted(item["id"] for item in listed(api, kind, **params)["items"])


def shows(api, kind, expected, **params) -> list[str]:
    """Waits until the list shows exactly `expected` (polls and rbac events take a moment)."""
    expected = sorted(expected)
    eventually(lambda: ids(api, kind, **params) == expected, POLL, 0.3, f"{kind} {expected}")
    return expected


def audited_action(admin, vm_id, power_action, **match) -> dict:
    """Waits for the audit record of a power action on the guest whose data holds `match`."""
    def found():
        return [record for record in admin.audit(action="vm_action", resource_id=vm_id)
                if record["data"]["action"] == power_action
                and all(record["data"].get(k) == v for k, v in match.items())]
    return eventually(found, POLL, 0.2, f"audit of {power_action} on {vm_id}")[0]


def scoped(platform, root, world, name, role, scope):
    user, api = user_in(platform, root, world["a"]["id"], f"{name}{world['tag']}", role)
    assign(root, user["id"], role, scope, tenant=world["a"]["id"]).raise_for_status()
    return api


# --- isolation and scope -----------------------------------------------------------------------------


def test_a_tenant_sees_only_its_own_inventory(world):
    a, b = world["conn_a"], world["conn_b"]
    shows(world["admin_a"], "vms", [f"{a}.100", f"{a}.101", f"{a}.200"])
    assert ids(world["admin_a"], "nodes") == [f"{a}.n1", f"{a}.n2"]
    assert ids(world["admin_a"], "storages") == [f"{a}.n1.local", f"{a}.n2.local-lvm"]
    shows(world["admin_b"], "vms", [f"{b}.100"])
    assert ids(world["admin_b"], "nodes") == [f"{b}.b1"]
    assert ids(world["admin_b"], "storages") == [f"{b}.b1.local"]
    assert ids(world["admin_a"], "vms", connection_id=b) == []
    error_of(world["admin_a"].get(f"/api/v1/inventory/vms/{b}.100"), 404, "vm_not_found")

    web = world["admin_a"].get(f"/api/v1/inventory/vms/{a}.100").json()
    assert (web["name"], web["type"], web["node"], web["vmid"]) == ("web-a", "qemu", "n1", 100)
    assert web["status"] == "stopped"
    assert web["connection_id"] == a and web["seen_at"].endswith("Z") and web["template"] is False


def test_lists_filter_and_page(world):
    a, admin = world["conn_a"], world["admin_a"]
    shows(admin, "vms", [f"{a}.100", f"{a}.101", f"{a}.200"])
    assert ids(admin, "vms", status="running") == [f"{a}.101"]
    assert ids(admin, "vms", type="lxc") == [f"{a}.200"]
    assert ids(admin, "vms", node="n2") == [f"{a}.200"]
    assert ids(admin, "storages", node="n1") == [f"{a}.n1.local"]
    first = listed(admin, "vms", limit=2)
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next_cursor"]
    rest = listed(admin, "vms", limit=2, cursor=first["next_cursor"])
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    error_of(admin.get("/api/v1/inventory/vms", params={"type": "openvz"}), 422, "validation_error")
    error_of(admin.get("/api/v1/inventory/vms", params={"cursor": "nope"}), 422, "validation_error")


def test_a_scope_narrows_every_list(platform, root, world):
    a = world["conn_a"]
    on_n1 = scoped(platform, root, world, "invn1", "viewer", {"nodes": ["n1"]})
    shows(on_n1, "vms", [f"{a}.100", f"{a}.101"])
    assert ids(on_n1, "nodes") == [f"{a}.n1"]
    assert ids(on_n1, "storages") == [f"{a}.n1.local"]
    error_of(on_n1.get(f"/api/v1/inventory/vms/{a}.200"), 404, "vm_not_found")

    only_100 = scoped(platform, root, world, "invvm", "viewer", {"vms": ["100"]})
    shows(only_100, "vms", [f"{a}.100"])
    assert ids(only_100, "nodes") == [f"{a}.n1", f"{a}.n2"]  # a VM scope narrows guests only

    elsewhere = scoped(platform, root, world, "invother", "viewer", {"connections": [world["conn_b"]]})
    shows(elsewhere, "vms", [])
    assert ids(elsewhere, "nodes") == [] and ids(elsewhere, "storages") == []


def test_the_view_permissions_guard_the_lists(platform, root, world):
    nobody = scoped(platform, root, world, "invnone", "viewer", {})
    assert nobody.get("/api/v1/inventory/vms").status_code == 200
    role = root.post("/api/v1/roles", json={"name": f"nodes-only-{world['tag']}", "permissions": ["node.view"],
                                              "global": True})
    assert role.status_code == 201, role.text
    user, api = user_in(platform, root, world["a"]["id"], f"invnodes{world['tag']}", "viewer")
    assign(root, user["id"], role.json()["name"], tenant=world["a"]["id"]).raise_for_status()
    eventually(lambda: api.get("/api/v1/inventory/vms").status_code == 403, POLL, 0.3, "vm.view gone")
    error_of(api.get("/api/v1/inventory/vms"), 403, "permission_denied")
    error_of(api.get("/api/v1/inventory/storages"), 403, "permission_denied")
    assert api.get("/api/v1/inventory/nodes").status_code == 200


# --- power actions -------------------------------------------------------------------------------------


def test_an_operator_starts_and_stops_a_vm_audited(world):
    a, operator, pve_a = world["conn_a"], world["operator_a"], world["pve_a"]
    vm = f"{a}.100"
    shows(operator, "vms", [vm, f"{a}.101", f"{a}.200"])
    started = operator.post(f"/api/v1/inventory/vms/{vm}/start")
    assert started.status_code == 202, started.text
    assert started.json()["vm"] == vm and started.json()["action"] == "start"
    assert started.json()["task"].startswith("UPID:n1:") and ":qmstart:100:" in started.json()["task"]
    assert guest(pve_a, 100)["status"] == "running"
    assert ids(operator, "vms", status="running") == [vm, f"{a}.101"]  # read again right after the action
    record = audited_action(world["admin_a"], vm, "start")
    assert record["outcome"] == "success" and record["category"] == "operations"
    assert record["data"]["node"] == "n1" and record["data"]["vmid"] == 100 and record["data"]["task"]

    refused = error_of(operator.post(f"/api/v1/inventory/vms/{vm}/start"), 409, "action_refused")
    assert "already running" in refused["message"]
    failed = audited_action(world["admin_a"], vm, "start", error="action_refused")
    assert failed["outcome"] == "failure" and "already running" in failed["data"]["error_message"]

    assert operator.post(f"/api/v1/inventory/vms/{vm}/reboot").status_code == 202
    assert operator.post(f"/api/v1/inventory/vms/{vm}/shutdown").status_code == 202
    assert guest(pve_a, 100)["status"] == "stopped"
    assert operator.post(f"/api/v1/inventory/vms/{a}.200/start").status_code == 202  # a container
    assert guest(pve_a, 200)["status"] == "running"
    assert operator.post(f"/api/v1/inventory/vms/{a}.200/stop").status_code == 202
    assert guest(pve_a, 200)["status"] == "stopped"


def test_actions_need_their_permission_and_scope(platform, root, world):
    a = world["conn_a"]
    shows(world["viewer_a"], "vms", [f"{a}.100", f"{a}.101", f"{a}.200"])
    denied = error_of(world["viewer_a"].post(f"/api/v1/inventory/vms/{a}.101/stop"), 403, "permission_denied")
    assert denied["details"]["permission"] == "vm.stop"
    error_of(world["viewer_a"].post(f"/api/v1/inventory/vms/{a}.101/reboot"), 403, "permission_denied")
    assert guest(world["pve_a"], 101)["status"] == "running"

    operator_100 = scoped(platform, root, world, "invop", "operator", {"vms": ["100"]})
    shows(operator_100, "vms", [f"{a}.100"])
    outside = error_of(operator_100.post(f"/api/v1/inventory/vms/{a}.101/stop"), 403, "permission_denied")
    assert outside["details"] == {"permission": "vm.stop", "vm": f"{a}.101"}
    assert guest(world["pve_a"], 101)["status"] == "running"


def test_another_tenants_guests_and_unknown_actions_are_not_found(world):
    a, b, operator = world["conn_a"], world["conn_b"], world["operator_a"]
    shows(world["admin_b"], "vms", [f"{b}.100"])
    error_of(operator.post(f"/api/v1/inventory/vms/{b}.100/start"), 404, "vm_not_found")
    assert guest(world["pve_b"], 100)["status"] == "stopped"
    error_of(operator.post(f"/api/v1/inventory/vms/{a}.999/start"), 404, "vm_not_found")
    error_of(operator.post("/api/v1/inventory/vms/not-an-id/start"), 404, "vm_not_found")
    unknown = error_of(operator.post(f"/api/v1/inventory/vms/{a}.100/destroy"), 404, "unknown_action")
    assert unknown["details"]["action"] == "one of start, stop, shutdown, reboot"


def test_an_unreachable_proxmox_fails_the_action_audited_and_keeps_the_inventory(root, world):
    pve_c = standin()
    add_node(pve_c, "c1")
    add_guest(pve_c, "c1", 300, name="far")
    conn = create_connection(root, name=f"inv-c-{world['tag']}", url=pve_c.url, ca_pem=pve_c.ca_pem,
                             tenant_id=world["a"]["id"])["id"]
    admin, vm = world["admin_a"], f"{conn}.300"
    shows(admin, "vms", [vm], connection_id=conn)
    pve_c.stop()
    failed = error_of(world["operator_a"].post(f"/api/v1/inventory/vms/{vm}/start"), 502, "unreachable")
    assert failed["details"] == {"vm": vm, "action": "start"}
    record = audited_action(admin, vm, "start", error="unreachable")
    assert record["outcome"] == "failure"

    def poll_failed():
        statuses = admin.get("/api/v1/inventory/connections", params={"limit": 200}).json()["items"]
        status = next(s for s in statuses if s["connection_id"] == conn)
        return status["error"] and status["error"]["code"] == "unreachable" and status["succeeded_at"]

    eventually(poll_failed, POLL, 0.3, "the failed poll recorded")
    assert ids(admin, "vms", connection_id=conn) == [vm]  # the last inventory stays

    assert root.delete(f"/api/v1/connections/{conn}").status_code == 204
    shows(admin, "vms", [], connection_id=conn)
    eventually(lambda: conn not in [s["connection_id"] for s in admin.get("/api/v1/inventory/connections")
                                    .json()["items"]], POLL, 0.3, "the deleted connection's status gone")
