"""RBAC through the gateway: each role's rights, every safety rail, scopes, groups and GIDs."""
import pytest
import requests
from kombu import Connection

from gateway.rpc import RpcPool
from kernel import SUPER_ADMIN_ONLY
from kernel.config import Config
from ops.supervisor import stop_group
from tests.harness import eventually, metric

DEFAULT = "default"
ISSUE_PERMISSIONS = [
    "vm.view", "vm.console", "vm.start", "vm.stop", "vm.restart", "vm.create", "vm.delete", "vm.config",
    "vm.snapshot", "vm.migrate", "storage.view", "storage.manage", "node.view", "node.manage", "backup.view",
    "backup.create", "backup.restore", "connection.view", "connection.manage", "tenant.view", "tenant.manage",
    "sync.view", "sync.run", "admin.users", "admin.rbac", "admin.audit", "admin.settings",
]


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def rpc(platform):
    pool = RpcPool(Config.from_env(platform.env).nameko(), size=1, timeout=10)
    with pool.client() as client:
        yield client
    pool.close()


def make_user(platform, admin, name, role=None, scope=None):
    """An active, signed-in user (tests.harness), given `role` in the default tenant through
    rbac's own assignment route, so that a scope can come with it."""
    user, api = platform.create_user(name, admin=admin)
    if role:
        assign(admin, user["id"], role, scope).raise_for_status()
    return user, api


def assign(api, user_id, role, scope=None, tenant=DEFAULT):
    return api.put(f"/api/v1/users/{user_id}/roles/{tenant}", json={"role": role, "scope": scope or {}})


def create_role(api, name, permissions, **extra):
    return api.post("/api/v1/roles", json={"name": name, "permissions": permissions, **extra})


def error_of(response, status, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def audited(admin, action, resource_id, **match):
    """Waits for the audit record of `action` about `resource_id` whose data holds `match`."""
    def found():
        return [e for e in admin.audit(action=action, resource_id=resource_id)
                if all(e["data"].get(k) == v for k, v in match.items())]
    return eventually(found, 20, 0.2, f"audit {action} of {resource_id}")[0]


# --- catalogue and built-in roles ------------------------------------------------------


def test_the_catalogue_lists_every_permission_to_any_signed_in_user(platform, admin, unique):
    assert platform.api().get("/api/v1/permissions").status_code == 401
    _, viewer = make_user(platform, admin, f"cat{unique}", "viewer")
    answer = viewer.get("/api/v1/permissions")
    assert answer.status_code == 200
    catalogue = {p["name"]: p for p in answer.json()["items"]}
    assert set(ISSUE_PERMISSIONS) <= set(catalogue)
    assert answer.json()["total"] == len(catalogue)
    assert catalogue["vm.delete"]["dangerous"] is True and catalogue["vm.view"]["dangerous"] is False
    assert all(p["category"] and p["description"] for p in catalogue.values())


def test_each_builtin_role_grants_its_rights(platform, admin, unique):
    rights = {}
    for role in ("viewer", "operator", "admin"):
        user, api = make_user(platform, admin, f"{role[:3]}{unique}", role)
        mine = api.get("/api/v1/me/permissions").json()
        assert mine["role"] == role and mine["super_admin"] is False and mine["tenant_id"] == DEFAULT
        rights[role] = (set(mine["permissions"]), api, user)
    catalogue = set(ISSUE_PERMISSIONS)
    assert rights["viewer"][0] == {p for p in catalogue if p.endswith(".view")}
    assert rights["operator"][0] == catalogue - {"tenant.manage", "admin.users", "admin.rbac", "admin.settings"}
    assert rights["admin"][0] == catalogue - {"tenant.manage", "admin.settings"}  # settings: super admins only
    root = admin.get("/api/v1/me/permissions").json()
    assert root["super_admin"] is True and set(root["permissions"]) == catalogue

    viewer, operator, tenant_admin = (rights[r][1] for r in ("viewer", "operator", "admin"))
    denied = error_of(viewer.get("/api/v1/audit/events"), 403, "permission_denied")
    assert denied["details"]["permission"] == "admin.audit"
    assert operator.get("/api/v1/audit/events").status_code == 200
    assert error_of(operator.get("/api/v1/roles"), 403, "permission_denied")["details"]["permission"] == "admin.rbac"
    assert tenant_admin.get("/api/v1/roles").status_code == 200
    assert tenant_admin.get(f"/api/v1/users/{rights['viewer'][2]['id']}").status_code == 200


def test_builtin_roles_are_listed_and_cannot_change(admin):
    roles = {r["id"]: r for r in admin.get("/api/v1/roles").json()["items"]}
    assert {"super_admin", "admin", "operator", "viewer"} <= set(roles)
    assert all(roles[r]["builtin"] and roles[r]["global"] for r in ("super_admin", "admin", "operator", "viewer"))
    assert roles["super_admin"]["user_count"] >= 1
    error_of(admin.patch("/api/v1/roles/viewer", json={"permissions": ["vm.view"]}), 403, "builtin_role_protected")
    error_of(admin.delete("/api/v1/roles/operator"), 403, "builtin_role_protected")
    assert admin.get("/api/v1/roles/viewer").json()["permissions"] == sorted(
        p for p in ISSUE_PERMISSIONS if p.endswith(".view"))


# --- custom roles -------------------------------------------------------------------------


def test_custom_role_lifecycle_is_audited_with_the_permission_diff(admin, unique):
    name = f"auditor-{unique}"
    created = create_role(admin, name, ["admin.audit", "vm.view"], description="reads the trail")
    assert created.status_code == 201, created.text
    role = created.json()
    assert created.headers["Location"] == f"/api/v1/roles/{role['id']}"
    assert role["tenant_id"] == DEFAULT and role["global"] is False and role["builtin"] is False
    assert admin.get(created.headers["Location"]).json()["permissions"] == ["admin.audit", "vm.view"]
    error_of(create_role(admin, name, ["vm.view"]), 409, "role_exists")

    changed = admin.patch(f"/api/v1/roles/{role['id']}", json={"permissions": ["admin.audit", "node.view"]})
    assert changed.status_code == 200 and changed.json()["permissions"] == ["admin.audit", "node.view"]
    audited(admin, "role_created", role["id"], permissions=["admin.audit", "vm.view"])
    audited(admin, "role_updated", role["id"], permissions_added=["node.view"], permissions_removed=["vm.view"])

    assert admin.delete(f"/api/v1/roles/{role['id']}").status_code == 204
    error_of(admin.get(f"/api/v1/roles/{role['id']}"), 404, "role_not_found")
    audited(admin, "role_deleted", role["id"])


def test_a_role_edit_based_on_a_stale_read_gets_412_and_changes_nothing(admin, unique):
    created = create_role(admin, f"etag-{unique}", ["vm.view"])
    location = created.headers["Location"]
    assert created.headers["ETag"] == '"1"'
    read = admin.get(location)
    assert read.headers["ETag"] == '"1"' and read.json()["version"] == 1

    changed = admin.patch(location, json={"description": "first"}, headers={"If-Match": read.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"' and changed.json()["version"] == 2
    stale = admin.patch(location, json={"permissions": ["vm.view", "node.view"]},
                        headers={"If-Match": read.headers["ETag"]})
    assert error_of(stale, 412, "precondition_failed")["details"] == {"version": 2}
    kept = admin.get(location)
    assert kept.json()["permissions"] == ["vm.view"] and kept.json()["description"] == "first"
    assert kept.headers["ETag"] == '"2"'

    unconditional = admin.patch(location, json={"description": "second"})  # no If-Match: no check
    assert unconditional.status_code == 200 and unconditional.headers["ETag"] == '"3"'
    assert admin.get("/api/v1/roles/viewer").headers["ETag"] == '"1"'  # built-ins never change
    # An If-Match that is no ETag of ours (the fuzzer's empty tag) is refused, with or without a body.
    for body in ({}, None):
        odd = admin.patch(location, json=body, headers={"If-Match": '""'})
        assert error_of(odd, 412, "precondition_failed")


def test_unknown_permissions_and_bad_roles_are_refused(admin, unique):
    unknown = error_of(create_role(admin, f"r{unique}", ["vm.view", "vm.fly"]), 422, "validation_error")
    assert unknown["details"]["json"]["permissions"] == {"1": ["unknown permission: vm.fly"]}
    assert "name" in error_of(create_role(admin, "viewer", ["vm.view"]), 422, "validation_error")["details"]["json"]
    assert "name" in error_of(create_role(admin, "Bad Name", ["vm.view"]), 422, "validation_error")["details"]["json"]
    role = create_role(admin, f"r{unique}", ["vm.view"]).json()
    error_of(admin.patch(f"/api/v1/roles/{role['id']}", json={"permissions": ["root"]}), 422, "validation_error")
    error_of(assign(admin, admin.get("/api/v1/me").json()["id"], "no-such-role"), 422, "unknown_role")


def test_a_role_in_use_cannot_be_deleted_and_says_by_how_many(platform, admin, unique):
    role = create_role(admin, f"used-{unique}", ["vm.view", "vm.console"]).json()
    for index in range(2):
        make_user(platform, admin, f"use{index}{unique}", role["name"])
    refused = error_of(admin.delete(f"/api/v1/roles/{role['id']}"), 409, "role_in_use")
    assert refused["details"]["users"] == 2 and "2 user" in refused["message"]
    assert admin.get(f"/api/v1/roles/{role['id']}").json()["user_count"] == 2


# --- escalation and the first admin ----------------------------------------------------------


def test_nobody_grants_or_shapes_a_role_beyond_their_own_permissions(platform, admin, unique):
    _, tenant_admin = make_user(platform, admin, f"ta{unique}", "admin")
    error_of(create_role(tenant_admin, f"tm-{unique}", ["tenant.manage"]), 403, "escalation")
    error_of(create_role(tenant_admin, f"gl-{unique}", ["vm.view"], **{"global": True}), 403, "super_admin_only")
    victim, _ = make_user(platform, admin, f"vi{unique}", "viewer")
    error_of(assign(tenant_admin, victim["id"], "super_admin"), 403, "super_admin_only")

    # A custom role that may manage users and RBAC and see everything, but change nothing else
    # (without admin.users it could act on nobody's account: docs/security.md).
    views = [p for p in ISSUE_PERMISSIONS if p.endswith(".view")]
    rbac_role = create_role(admin, f"rbac-{unique}", ["admin.users", "admin.rbac", *views]).json()
    _, delegate = make_user(platform, admin, f"de{unique}", rbac_role["name"])
    refused = error_of(assign(delegate, victim["id"], "operator"), 403, "escalation")
    assert "vm.start" in refused["details"]["permissions"]
    error_of(create_role(delegate, f"st-{unique}", ["vm.view", "vm.start"]), 403, "escalation")
    small = create_role(delegate, f"sm-{unique}", ["vm.view"])
    assert small.status_code == 201
    bigger = admin.patch(f"/api/v1/roles/{small.json()['id']}", json={"permissions": ["vm.view", "vm.delete"]})
    assert bigger.status_code == 200
    # Editing or deleting a role that now holds more than the editor is refused too.
    error_of(delegate.patch(f"/api/v1/roles/{small.json()['id']}", json={"permissions": ["vm.view"]}), 403, "escalation")
    error_of(delegate.delete(f"/api/v1/roles/{small.json()['id']}"), 403, "escalation")
    # Nor may the delegate demote someone they could not have promoted: the operator is out of their reach.
    operator, _ = make_user(platform, admin, f"op{unique}", "operator")
    error_of(assign(delegate, operator["id"], "viewer"), 403, "outside_authority")
    assert assign(delegate, victim["id"], small.json()["name"]).status_code == 403  # holds vm.delete now
    assert assign(delegate, victim["id"], "viewer").status_code == 200


def test_the_first_admins_role_cannot_change(admin):
    me = admin.get("/api/v1/me").json()
    error_of(assign(admin, me["id"], "viewer"), 403, "first_admin_protected")
    error_of(admin.delete(f"/api/v1/users/{me['id']}/roles/{DEFAULT}"), 403, "first_admin_protected")
    [held] = admin.get(f"/api/v1/users/{me['id']}/roles").json()["items"]
    assert held["role"] == "super_admin" and held["locked"] is True


def test_assignments_are_listed_replaced_removed_and_audited(platform, admin, unique):
    user, _ = make_user(platform, admin, f"as{unique}", "viewer")
    replaced = assign(admin, user["id"], "operator", {"connections": ["c-1"]})
    assert replaced.status_code == 200 and replaced.json()["scope"]["connections"] == ["c-1"]
    [held] = admin.get(f"/api/v1/users/{user['id']}/roles").json()["items"]
    assert (held["tenant_id"], held["role"], held["locked"]) == (DEFAULT, "operator", False)
    record = audited(admin, "role_assigned", user["id"], role="operator")
    assert record["data"]["previous_role"] == "viewer" and record["data"]["scope"]["connections"] == ["c-1"]
    assert record["tenant_ids"] == [DEFAULT]
    assert admin.delete(f"/api/v1/users/{user['id']}/roles/{DEFAULT}").status_code == 204
    assert admin.get(f"/api/v1/users/{user['id']}/roles").json()["items"] == []
    audited(admin, "role_unassigned", user["id"], role="operator")
    error_of(admin.delete(f"/api/v1/users/{user['id']}/roles/{DEFAULT}"), 404, "no_assignment")
    error_of(assign(admin, "0e7bd1c6-0000-4000-8000-000000000000", "viewer"), 404, "not_found")
    error_of(admin.put(f"/api/v1/users/{user['id']}/roles/{DEFAULT}",
                       json={"role": "viewer", "scope": {"clusters": ["1"]}}), 422, "validation_error")


def test_a_permission_change_applies_to_the_next_request(platform, admin, unique):
    role = create_role(admin, f"next-{unique}", ["admin.audit"]).json()
    _, user = make_user(platform, admin, f"nx{unique}", role["name"])
    assert user.get("/api/v1/audit/events").status_code == 200
    assert admin.patch(f"/api/v1/roles/{role['id']}", json={"permissions": ["vm.view"]}).status_code == 200
    # Immediate without a decision cache; the gateway's cache is dropped by the rbac event within 1 s.
    eventually(lambda: user.get("/api/v1/audit/events").status_code == 403, 5, 0.1, "role edit applied")
    assert admin.patch(f"/api/v1/roles/{role['id']}", json={"permissions": ["admin.audit"]}).status_code == 200
    eventually(lambda: user.get("/api/v1/audit/events").status_code == 200, 5, 0.1, "role edit applied")


@pytest.fixture
def second_rbac(platform):
    """rbac instance 1 next to instance 0, on the same database: RabbitMQ deals the rbac RPCs out
    between the two in turn. Yields a count of the authorize calls instance 1 answered."""
    process = platform.supervisor.start("rbac", instance=1)

    def consumers():
        with Connection(platform.env["GATEHOUSE_AMQP_URI"], connect_timeout=10) as conn:
            return conn.default_channel.queue_declare(queue="rpc-rbac", passive=True).consumer_count

    def answered_by_second():
        try:
            text = requests.get(platform.metrics_url("rbac", instance=1), timeout=5).text
        except requests.RequestException:
            return 0
        return metric(text, "gatehouse_rpc_duration_seconds_count", service="rbac", method="authorize", outcome="ok")

    try:
        eventually(lambda: consumers() == 2, 60, 0.3, "two rbac instances")
        yield answered_by_second
    finally:
        stop_group(process)
        platform.supervisor.children.pop("rbac#1", None)


def test_every_rbac_instance_decides_on_a_change_as_soon_as_it_returns(platform, admin, rpc, second_rbac, unique):
    """Each instance caches grants; whichever answers the next decision after a change knows of it,
    without waiting for an event (asked directly: the gateway's own cache waits for events)."""
    role = create_role(admin, f"both-{unique}", ["admin.audit"]).json()
    user, _ = make_user(platform, admin, f"bo{unique}", role["name"])
    sysadmins = group_of(admin, "sysadmins")

    def decisions(permission):  # enough calls for both instances to answer, from their caches after the first
        return {rpc.rbac.authorize(user["id"], permission, DEFAULT) for _ in range(6)}

    answered_before = second_rbac()
    assert decisions("admin.audit") == {True} and decisions(SUPER_ADMIN_ONLY) == {False}
    assert admin.patch(f"/api/v1/roles/{role['id']}", json={"permissions": ["vm.view"]}).status_code == 200
    assert decisions("admin.audit") == {False} and decisions("vm.view") == {True}
    assert admin.post(f"/api/v1/groups/{sysadmins['id']}/members", json={"user_id": user["id"]}).status_code == 201
    assert decisions(SUPER_ADMIN_ONLY) == {True} and decisions("admin.audit") == {True}
    assert admin.delete(f"/api/v1/groups/{sysadmins['id']}/members/{user['id']}").status_code == 204
    assert decisions(SUPER_ADMIN_ONLY) == {False}
    assert assign(admin, user["id"], "operator").status_code == 200
    assert decisions("vm.start") == {True} and decisions("vm.view") == {True}
    assert second_rbac() - answered_before >= 10, "instance 1 answered its share"


# --- scopes ---------------------------------------------------------------------------------------


def test_scope_narrows_authorization_on_exact_ids(platform, admin, rpc, unique):
    scope = {"connections": ["conn-a"], "nodes": ["pve1"], "storages": [], "vms": []}
    user, api = make_user(platform, admin, f"sc{unique}", "operator", scope)
    mine = api.get("/api/v1/me/permissions").json()
    assert mine["scope"] == scope
    assert rpc.rbac.scope_of(user["id"], DEFAULT) == scope
    assert rpc.rbac.authorize(user["id"], "vm.start", DEFAULT, {"connection": "conn-a", "node": "pve1"})
    assert rpc.rbac.authorize(user["id"], "storage.view", DEFAULT, {"connection": "conn-a", "storage": "local"})
    assert not rpc.rbac.authorize(user["id"], "vm.start", DEFAULT, {"connection": "conn-b", "node": "pve1"})
    assert not rpc.rbac.authorize(user["id"], "vm.start", DEFAULT, {"connection": "conn-a", "node": "pve10"})
    assert not rpc.rbac.authorize(user["id"], "vm.start", DEFAULT, {"connection": "conn-a2"})  # no prefix match
    assert not rpc.rbac.authorize(user["id"], "tenant.manage", DEFAULT, {"connection": "conn-a"})
    with pytest.raises(Exception) as unknown:
        rpc.rbac.authorize(user["id"], "vm.fly", DEFAULT)
    assert getattr(unknown.value, "code", None) == "unknown_permission"
    # An empty scope sees everything; a super admin is never narrowed.
    assert assign(admin, user["id"], "operator").status_code == 200
    assert rpc.rbac.authorize(user["id"], "vm.start", DEFAULT, {"connection": "conn-b", "node": "pve9"})
    root_id = admin.get("/api/v1/me").json()["id"]
    assert rpc.rbac.authorize(root_id, "vm.delete", DEFAULT, {"connection": "anything"})


def test_denials_recorded_by_the_gateway_are_audited(admin, rpc, unique):
    actor = {"user_id": f"denied-{unique}", "username": f"den{unique}", "ip": "127.0.0.1", "request_id": unique}
    rpc.rbac.record_denial(actor, "admin.rbac", DEFAULT, "GET /api/v1/roles")
    record = eventually(lambda: [e for e in admin.audit(action="authorization_denied")
                                 if e["actor"]["user_id"] == actor["user_id"]], 20, 0.2, "denial audited")[0]
    assert record["outcome"] == "failure" and record["category"] == "rbac"
    assert record["data"] == {"permission": "admin.rbac", "route": "GET /api/v1/roles", "tenant_id": DEFAULT}


# --- groups ---------------------------------------------------------------------------------------


def group_of(admin, cn):
    found = [g for g in admin.get("/api/v1/groups", params={"limit": 200}).json()["items"] if g["cn"] == cn]
    return found[0] if found else None


def test_new_users_join_ldapusers_automatically(platform, admin, unique):
    user, _ = make_user(platform, admin, f"ld{unique}")
    groups = eventually(lambda: admin.get(f"/api/v1/users/{user['id']}/groups").json()["items"], 20, 0.2,
                        "ldapusers membership")
    assert [g["cn"] for g in groups] == ["ldapusers"]
    ldapusers = group_of(admin, "ldapusers")
    assert ldapusers["gid_number"] == 5000 and ldapusers["builtin"] and not ldapusers["is_admin"]
    assert group_of(admin, "sysadmins")["is_admin"] is True
    audited(admin, "member_added", ldapusers["id"], user_id=user["id"])


def test_the_next_gid_is_suggested_and_is_what_a_creation_without_one_gets(admin, platform, unique):
    suggested = admin.get("/api/v1/groups/next-gid")
    assert suggested.status_code == 200, suggested.text
    body = suggested.json()
    assert (body["gid_min"], body["gid_max"]) == (5000, 9999) and 5002 <= body["gid_number"] <= 9999
    created = admin.post("/api/v1/groups", json={"cn": f"next_{unique}"})
    assert created.status_code == 201 and created.json()["gid_number"] == body["gid_number"], created.text
    assert admin.get("/api/v1/groups/next-gid").json()["gid_number"] != body["gid_number"]
    _, viewer = platform.create_user(f"ng{unique}", role="viewer")
    error_of(viewer.get("/api/v1/groups/next-gid"), 403, "permission_denied")
    assert admin.delete(f"/api/v1/groups/{created.json()['id']}").status_code == 204


def test_group_gids_are_allocated_and_validated(admin, unique):
    created = admin.post("/api/v1/groups", json={"cn": f"team_{unique}", "description": "a team"})
    assert created.status_code == 201, created.text
    group = created.json()
    assert created.headers["Location"] == f"/api/v1/groups/{group['id']}"
    assert 5000 <= group["gid_number"] <= 9999 and group["gid_number"] not in (5000, 5001)
    assert group["is_admin"] is False and group["builtin"] is False
    error_of(admin.post("/api/v1/groups", json={"cn": f"team_{unique}"}), 409, "group_exists")
    taken = error_of(admin.post("/api/v1/groups", json={"cn": f"t2_{unique}", "gid_number": 5000}), 409, "gid_taken")
    assert taken["details"] == {"gid_number": "already in use by the group 'ldapusers'"}  # a holder the tenant sees
    for gid in (4999, 10000, 10042):  # outside the range; 10000+ may equal a uidNumber
        refused = error_of(admin.post("/api/v1/groups", json={"cn": f"t3_{unique}", "gid_number": gid}),
                           422, "validation_error")
        assert "gid_number" in str(refused["details"])  # the configured range is rbac's, 10000+ the gateway's
    for cn in ("Upper", "9lives", "-dash", "has space", "x" * 33, "cn=evil,dc=x"):
        refused = admin.post("/api/v1/groups", json={"cn": cn})
        assert refused.status_code == 422 and "cn" in str(refused.json()["error"]["details"]), cn
    chosen = admin.post("/api/v1/groups", json={"cn": f"t4_{unique}", "gid_number": group["gid_number"] + 1000})
    assert chosen.status_code == 201 and chosen.json()["gid_number"] == group["gid_number"] + 1000

    renamed = admin.patch(f"/api/v1/groups/{group['id']}", json={"cn": f"squad_{unique}", "description": "new"})
    assert renamed.status_code == 200 and renamed.json()["cn"] == f"squad_{unique}"
    error_of(admin.patch(f"/api/v1/groups/{group['id']}", json={"gid_number": 5001}), 409, "gid_taken")
    audited(admin, "group_created", group["id"])
    updated = audited(admin, "group_updated", group["id"])
    assert updated["data"]["changes"]["cn"] == {"from": f"team_{unique}", "to": f"squad_{unique}"}
    assert admin.delete(f"/api/v1/groups/{group['id']}").status_code == 204
    error_of(admin.get(f"/api/v1/groups/{group['id']}"), 404, "group_not_found")
    audited(admin, "group_deleted", group["id"])


def test_builtin_groups_stay(admin):
    for cn in ("ldapusers", "sysadmins"):
        group = group_of(admin, cn)
        error_of(admin.delete(f"/api/v1/groups/{group['id']}"), 403, "builtin_group_protected")
        error_of(admin.patch(f"/api/v1/groups/{group['id']}", json={"cn": f"{cn}2"}), 403, "builtin_group_protected")
        error_of(admin.patch(f"/api/v1/groups/{group['id']}", json={"is_admin": cn == "ldapusers"}),
                 403, "builtin_group_protected")
    assert group_of(admin, "ldapusers")["gid_number"] == 5000


def test_only_super_admins_touch_administrator_groups(platform, admin, unique):
    _, tenant_admin = make_user(platform, admin, f"ag{unique}", "admin")
    error_of(tenant_admin.post("/api/v1/groups", json={"cn": f"ops_{unique}", "is_admin": True}), 403, "super_admin_only")
    plain = tenant_admin.post("/api/v1/groups", json={"cn": f"dev_{unique}"})
    assert plain.status_code == 201
    error_of(tenant_admin.patch(f"/api/v1/groups/{plain.json()['id']}", json={"is_admin": True}), 403,
             "super_admin_only")
    admins = admin.post("/api/v1/groups", json={"cn": f"ops_{unique}", "is_admin": True})
    assert admins.status_code == 201 and admins.json()["is_admin"] is True
    error_of(tenant_admin.delete(f"/api/v1/groups/{admins.json()['id']}"), 403, "super_admin_only")
    me = tenant_admin.get("/api/v1/me").json()
    sysadmins = group_of(admin, "sysadmins")
    error_of(tenant_admin.post(f"/api/v1/groups/{sysadmins['id']}/members", json={"user_id": me["id"]}), 403,
             "super_admin_only")


def test_administrator_group_membership_applies_to_the_next_request(platform, admin, unique):
    user, api = make_user(platform, admin, f"sy{unique}", "viewer")
    sysadmins = group_of(admin, "sysadmins")
    members = f"/api/v1/groups/{sysadmins['id']}/members"
    error_of(api.get("/api/v1/roles"), 403, "permission_denied")

    added = admin.post(members, json={"user_id": user["id"]})
    assert added.status_code == 201 and added.json()["username"] == f"sy{unique}"
    assert admin.get(added.headers["Location"]).json() == added.json()  # Location names the membership
    assert admin.post(members, json={"user_id": user["id"]}).status_code == 200  # already a member
    eventually(lambda: api.get("/api/v1/roles").status_code == 200, 5, 0.1, "membership applied")
    mine = api.get("/api/v1/me/permissions").json()
    assert mine["super_admin"] is True and "tenant.manage" in mine["permissions"]
    assert {"cn": "sysadmins", "is_admin": True} in mine["groups"]
    listed = admin.get(members, params={"limit": 200}).json()
    assert user["id"] in [m["user_id"] for m in listed["items"]]
    audited(admin, "member_added", sysadmins["id"], user_id=user["id"])

    assert admin.delete(f"{members}/{user['id']}").status_code == 204
    eventually(lambda: api.get("/api/v1/roles").status_code == 403, 5, 0.1, "removal applied")
    audited(admin, "member_removed", sysadmins["id"], user_id=user["id"])
    error_of(admin.delete(f"{members}/{user['id']}"), 404, "not_a_member")
    error_of(admin.get(f"{members}/{user['id']}"), 404, "not_a_member")
    error_of(admin.post(members, json={"user_id": "0e7bd1c6-0000-4000-8000-000000000000"}), 404, "not_found")


def test_member_lists_page(platform, admin, unique):
    group = admin.post("/api/v1/groups", json={"cn": f"pg_{unique}"}).json()
    for index in range(3):
        user, _ = make_user(platform, admin, f"pg{index}{unique}")
        assert admin.post(f"/api/v1/groups/{group['id']}/members", json={"user_id": user["id"]}).status_code == 201
    first = admin.get(f"/api/v1/groups/{group['id']}/members", params={"limit": 2}).json()
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next_cursor"]
    rest = admin.get(f"/api/v1/groups/{group['id']}/members",
                     params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert admin.get(f"/api/v1/groups/{group['id']}").json()["member_count"] == 3


def test_group_members_follow_a_rename(platform, admin, unique):
    user, _ = make_user(platform, admin, f"rn{unique}")
    ldapusers = group_of(admin, "ldapusers")
    eventually(lambda: admin.get(f"/api/v1/users/{user['id']}/groups").json()["items"], 20, 0.2, "ldapusers")
    version = admin.get(f"/api/v1/users/{user['id']}").headers["ETag"]
    renamed = admin.patch(f"/api/v1/users/{user['id']}", json={"username": f"rn2{unique}"},
                          headers={"If-Match": version})
    assert renamed.status_code == 200, renamed.text

    def member_name():
        members = admin.get(f"/api/v1/groups/{ldapusers['id']}/members", params={"limit": 200})
        return {m["user_id"]: m["username"] for m in members.json()["items"]}.get(user["id"])

    eventually(lambda: member_name() == f"rn2{unique}", 20, 0.2, "member renamed")


def test_a_removed_users_assignments_and_memberships_go_too(platform, admin, unique):
    user, _ = make_user(platform, admin, f"rm{unique}", "operator")
    eventually(lambda: admin.get(f"/api/v1/users/{user['id']}/groups").json()["items"], 20, 0.2, "ldapusers")
    assert admin.delete(f"/api/v1/users/{user['id']}").status_code == 204
    eventually(lambda: not admin.get(f"/api/v1/users/{user['id']}/roles").json()["items"]
               and not admin.get(f"/api/v1/users/{user['id']}/groups").json()["items"], 20, 0.2, "access forgotten")
    audited(admin, "role_unassigned", user["id"], role="operator")


def test_rbac_routes_are_in_the_openapi_spec(platform):
    paths = platform.api().get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/permissions", "/api/v1/roles", "/api/v1/roles/{role_id}", "/api/v1/users/{user_id}/roles",
                 "/api/v1/users/{user_id}/roles/{tenant_id}", "/api/v1/groups", "/api/v1/groups/{group_id}",
                 "/api/v1/groups/{group_id}/members", "/api/v1/groups/{group_id}/members/{user_id}",
                 "/api/v1/users/{user_id}/groups", "/api/v1/me/permissions"):
        assert path in paths, path
