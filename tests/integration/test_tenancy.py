"""Multi-tenancy through the gateway: the switch, tenants, memberships with their roles, and
tenant admins confined to their own tenants.

Enabling is global state of the shared platform: it happens once (enabled_tenancy) and stays
on; `default` behaves exactly as before for everyone else.
"""
import pytest

from tests.harness import eventually
from tests.integration.test_rbac import audited, error_of

DEFAULT = "default"


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin()


def enable_tenancy(admin) -> dict:
    answer = admin.post("/api/v1/tenancy/enable")
    assert answer.status_code == 200, answer.text
    return answer.json()


def new_tenant(admin, name: str) -> dict:
    enable_tenancy(admin)
    created = admin.post("/api/v1/tenants", json={"name": name, "description": f"tenant {name}"})
    assert created.status_code == 201, created.text
    return created.json()


def make_user(platform, admin, name: str, role: str | None = None):
    """An active signed-in user (tests.harness), once tenancy has put them into `default`."""
    user, api = platform.create_user(name, role=role, admin=admin)
    eventually(lambda: admin.get(f"/api/v1/tenants/{DEFAULT}/users/{user['id']}").status_code == 200, 20, 0.2,
               f"{name} in the default tenant")
    return user, api


def member(admin, tenant_id: str, user_id: str, role: str, **extra):
    return admin.put(f"/api/v1/tenants/{tenant_id}/users/{user_id}", json={"role": role, **extra})


def roles_of(admin, user_id: str) -> dict:
    """{tenant_id: role} as rbac holds them."""
    answer = admin.get(f"/api/v1/users/{user_id}/roles")
    assert answer.status_code == 200, answer.text
    return {a["tenant_id"]: a["role"] for a in answer.json()["items"]}


def role_becomes(admin, user_id: str, tenant_id: str, role: str | None):
    """rbac applies a membership's role from tenancy's event: wait for it."""
    eventually(lambda: roles_of(admin, user_id).get(tenant_id) == role, 20, 0.2,
               f"role {role} of {user_id} in {tenant_id}")


# --- the switch --------------------------------------------------------------------------------------


def test_enabling_is_for_super_admins_idempotent_and_audited_once(platform, admin, unique):
    _, tenant_admin = platform.create_user(f"sw{unique}", role="admin", admin=admin)
    error_of(tenant_admin.post("/api/v1/tenancy/enable"), 403, "permission_denied")
    assert tenant_admin.get("/api/v1/tenancy").status_code == 200  # tenant.view
    _, nobody = platform.create_user(f"sn{unique}", admin=admin)
    error_of(nobody.get("/api/v1/tenancy"), 403, "permission_denied")

    first = enable_tenancy(admin)
    assert first["enabled"] is True and first["tenants"] >= 1 and first["changed_by"]
    again = enable_tenancy(admin)
    assert again["changed_at"] == first["changed_at"]  # nothing happened the second time
    record = audited(admin, "multi_tenancy_enabled", "multi_tenancy")
    assert record["tenant_ids"] == [DEFAULT] and record["category"] == "tenancy"
    counts = record["data"]["default_tenant"]
    assert counts["users"] >= 1 and counts["connections"] >= 0
    assert len(admin.audit(action="multi_tenancy_enabled")) == 1

    tenant = new_tenant(admin, f"Keep {unique}")
    error_of(admin.post("/api/v1/tenancy/disable"), 409, "tenants_exist")
    error_of(tenant_admin.post("/api/v1/tenancy/disable"), 403, "permission_denied")
    assert admin.get("/api/v1/tenancy").json()["enabled"] is True
    assert admin.delete(f"/api/v1/tenants/{tenant['id']}").status_code == 204


def test_the_default_tenant_exists_and_holds_every_user(platform, admin, unique):
    user, _ = make_user(platform, admin, f"du{unique}")
    default = admin.get(f"/api/v1/tenants/{DEFAULT}")
    assert default.status_code == 200 and default.json()["is_default"] is True
    assert admin.get(f"/api/v1/tenants/{DEFAULT}/users/{user['id']}").json()["is_default"] is True


# --- tenants -------------------------------------------------------------------------------------------


def test_tenants_are_created_renamed_and_deleted_with_clear_refusals(platform, admin, unique):
    tenant = new_tenant(admin, f"Acme {unique}")
    assert tenant["connection_count"] == 0 and tenant["user_count"] == 0 and tenant["version"] == 1
    location = f"/api/v1/tenants/{tenant['id']}"
    assert admin.get(location).headers["ETag"] == '"1"'
    error_of(admin.post("/api/v1/tenants", json={"name": f"ACME {unique}"}), 409, "tenant_exists")
    assert "name" in error_of(admin.post("/api/v1/tenants", json={"name": ""}), 422, "validation_error")["details"]["json"]
    _, tenant_admin = platform.create_user(f"tc{unique}", role="admin", admin=admin)
    error_of(tenant_admin.post("/api/v1/tenants", json={"name": f"Mine {unique}"}), 403, "permission_denied")
    error_of(tenant_admin.patch(location, json={"name": "x"}), 403, "permission_denied")  # no tenant.manage

    error_of(admin.patch(location, json={"name": f"Acme Corp {unique}"}, headers={"If-Match": '"7"'}),
             412, "precondition_failed")
    renamed = admin.patch(location, json={"name": f"Acme Corp {unique}"}, headers={"If-Match": '"1"'})
    assert renamed.status_code == 200 and renamed.json()["version"] == 2 and renamed.headers["ETag"] == '"2"'
    record = audited(admin, "tenant_updated", tenant["id"])
    assert record["data"]["changes"]["name"] == {"from": f"Acme {unique}", "to": f"Acme Corp {unique}"}
    assert record["tenant_ids"] == [tenant["id"]]
    audited(admin, "tenant_created", tenant["id"], name=f"Acme {unique}")

    connection = admin.post("/api/v1/connections", json={
        "name": f"acme-pve-{unique}", "url": "https://10.9.9.9", "tenant_id": tenant["id"],
        "auth": {"token_id": "gatehouse@pve!sync", "token_secret": "x"}})
    assert connection.status_code == 201, connection.text
    refused = error_of(admin.delete(location), 409, "tenant_has_connections")
    assert refused["details"]["connections"] == 1
    assert admin.delete(f"/api/v1/connections/{connection.json()['id']}").status_code == 204
    assert admin.delete(location).status_code == 204
    error_of(admin.get(location), 404, "tenant_not_found")
    audited(admin, "tenant_deleted", tenant["id"])
    error_of(admin.delete(f"/api/v1/tenants/{DEFAULT}"), 409, "default_tenant_protected")


def test_people_see_only_the_tenants_they_belong_to(platform, admin, unique):
    mine, theirs = new_tenant(admin, f"Mine {unique}"), new_tenant(admin, f"Theirs {unique}")
    user, api = make_user(platform, admin, f"tv{unique}", role="viewer")
    assert member(admin, mine["id"], user["id"], "viewer").status_code == 201
    listed = api.get("/api/v1/tenants", params={"limit": 200})
    assert listed.status_code == 200
    ids = [t["id"] for t in listed.json()["items"]]
    assert ids == [DEFAULT, mine["id"]] and listed.json()["total"] == 2
    assert api.get(f"/api/v1/tenants/{mine['id']}").status_code == 200
    error_of(api.get(f"/api/v1/tenants/{theirs['id']}"), 404, "tenant_not_found")
    error_of(api.get(f"/api/v1/tenants/{theirs['id']}/users"), 404, "tenant_not_found")
    everything = [t["id"] for t in admin.get("/api/v1/tenants", params={"limit": 200}).json()["items"]]
    assert everything[0] == DEFAULT and {mine["id"], theirs["id"]} <= set(everything)


# --- memberships -----------------------------------------------------------------------------------------


def test_assigning_a_member_gives_the_role_and_removing_takes_it(platform, admin, unique):
    tenant = new_tenant(admin, f"Members {unique}")
    user, _ = make_user(platform, admin, f"mb{unique}", role="viewer")
    joined = member(admin, tenant["id"], user["id"], "operator")
    assert joined.status_code == 201, joined.text
    assert joined.headers["Location"] == f"/api/v1/tenants/{tenant['id']}/users/{user['id']}"
    assert joined.json()["role"] == "operator" and joined.json()["is_default"] is False
    role_becomes(admin, user["id"], tenant["id"], "operator")
    listed = admin.get(f"/api/v1/tenants/{tenant['id']}/users").json()
    assert listed["total"] == 1 and listed["items"][0]["role"] == "operator"
    assert listed["items"][0]["username"] == f"mb{unique}"
    record = audited(admin, "user_assigned_to_tenant", user["id"], tenant_id=tenant["id"], role="operator")
    assert record["tenant_ids"] == [tenant["id"]]  # not shown in the user's other tenants
    audited(admin, "role_assigned", user["id"], tenant_id=tenant["id"], role="operator")

    again = member(admin, tenant["id"], user["id"], "viewer", default=True)
    assert again.status_code == 200 and again.json()["is_default"] is True
    role_becomes(admin, user["id"], tenant["id"], "viewer")
    assert admin.get(f"/api/v1/tenants/{DEFAULT}/users/{user['id']}").json()["is_default"] is False

    assert admin.delete(f"/api/v1/tenants/{tenant['id']}/users/{user['id']}").status_code == 204
    role_becomes(admin, user["id"], tenant["id"], None)
    assert roles_of(admin, user["id"])[DEFAULT] == "viewer"  # the other tenant keeps its role
    audited(admin, "user_removed_from_tenant", user["id"], tenant_id=tenant["id"], reason="removed")
    audited(admin, "role_unassigned", user["id"], tenant_id=tenant["id"])
    assert admin.get(f"/api/v1/tenants/{DEFAULT}/users/{user['id']}").json()["is_default"] is True
    error_of(admin.delete(f"/api/v1/tenants/{DEFAULT}/users/{user['id']}"), 409, "last_tenant")
    error_of(admin.delete(f"/api/v1/tenants/{tenant['id']}/users/{user['id']}"), 404, "not_a_member")


def test_assignments_are_checked_before_anything_changes(platform, admin, unique):
    tenant = new_tenant(admin, f"Checks {unique}")
    user, _ = make_user(platform, admin, f"ck{unique}")
    error_of(member(admin, tenant["id"], "no-such-user", "viewer"), 404, "not_found")
    error_of(member(admin, tenant["id"], user["id"], "no-such-role"), 422, "unknown_role")
    error_of(member(admin, "no-such-tenant", user["id"], "viewer"), 404, "tenant_not_found")
    assert admin.get(f"/api/v1/tenants/{tenant['id']}/users").json()["total"] == 0
    assert "role" in error_of(admin.put(f"/api/v1/tenants/{tenant['id']}/users/{user['id']}", json={}),
                              422, "validation_error")["details"]["json"]
    root = admin.get("/api/v1/me").json()
    error_of(member(admin, DEFAULT, root["id"], "viewer"), 403, "first_admin_protected")


def test_tenant_admins_manage_their_own_tenants_only(platform, admin, unique):
    ours, other = new_tenant(admin, f"Ours {unique}"), new_tenant(admin, f"Other {unique}")
    boss, boss_api = make_user(platform, admin, f"bo{unique}", role="viewer")
    assert member(admin, ours["id"], boss["id"], "admin").status_code == 201
    role_becomes(admin, boss["id"], ours["id"], "admin")
    # A colleague only in tenants boss administers (a member of default too would be out of boss's reach:
    # boss does not administer default).
    also = new_tenant(admin, f"Also {unique}")
    assert member(admin, also["id"], boss["id"], "admin").status_code == 201
    role_becomes(admin, boss["id"], also["id"], "admin")
    colleague, _ = make_user(platform, admin, f"co{unique}")
    assert member(admin, ours["id"], colleague["id"], "viewer").status_code == 201
    assert member(admin, also["id"], colleague["id"], "viewer").status_code == 201
    assert admin.delete(f"/api/v1/tenants/{DEFAULT}/users/{colleague['id']}").status_code == 204
    stranger, _ = make_user(platform, admin, f"st{unique}")  # default only, which boss does not administer
    outsider, _ = make_user(platform, admin, f"ou{unique}")
    assert member(admin, other["id"], outsider["id"], "viewer").status_code == 201
    assert admin.delete(f"/api/v1/tenants/{DEFAULT}/users/{outsider['id']}").status_code == 204  # only in other

    # Members of their tenant: role changes and removal.
    assert member(boss_api, ours["id"], colleague["id"], "operator").status_code == 200
    role_becomes(admin, colleague["id"], ours["id"], "operator")
    error_of(member(boss_api, ours["id"], colleague["id"], "super_admin"), 403, "super_admin_only")
    assert boss_api.delete(f"/api/v1/tenants/{ours['id']}/users/{colleague['id']}").status_code == 204
    # No takeover: a user in no tenant they administer (one they see as a viewer, or cannot even see)
    # answers exactly as an unknown id.
    unknown = error_of(member(boss_api, ours["id"], "00000000-0000-4000-8000-000000000000", "viewer"), 404,
                       "not_found")
    for user in (stranger, outsider):
        refused = error_of(member(boss_api, ours["id"], user["id"], "viewer"), 404, "not_found")
        assert refused == {**unknown, "details": {"user_id": user["id"]}}
    # Another tenant: invisible.
    error_of(member(boss_api, other["id"], boss["id"], "admin"), 404, "tenant_not_found")
    error_of(boss_api.delete(f"/api/v1/tenants/{other['id']}/users/{outsider['id']}"), 404, "tenant_not_found")
    # Default, where they are a viewer: visible, not theirs to manage.
    error_of(member(boss_api, DEFAULT, stranger["id"], "viewer"), 403, "permission_denied")
    assert admin.get(f"/api/v1/tenants/{other['id']}/users").json()["total"] == 1


def test_deleting_a_tenant_takes_its_memberships_and_roles(platform, admin, unique):
    tenant = new_tenant(admin, f"Doomed {unique}")
    user, _ = make_user(platform, admin, f"dm{unique}")
    assert member(admin, tenant["id"], user["id"], "operator").status_code == 201
    role_becomes(admin, user["id"], tenant["id"], "operator")
    assert admin.delete(f"/api/v1/tenants/{tenant['id']}").status_code == 204
    role_becomes(admin, user["id"], tenant["id"], None)
    audited(admin, "user_removed_from_tenant", user["id"], tenant_id=tenant["id"], reason="tenant_deleted")
    assert admin.get(f"/api/v1/tenants/{DEFAULT}/users/{user['id']}").json()["is_default"] is True


def test_removed_users_leave_every_tenant(platform, admin, unique):
    tenant = new_tenant(admin, f"Leaving {unique}")
    user, _ = make_user(platform, admin, f"lv{unique}")
    assert member(admin, tenant["id"], user["id"], "viewer").status_code == 201
    assert admin.delete(f"/api/v1/users/{user['id']}").status_code == 204
    eventually(lambda: admin.get(f"/api/v1/tenants/{tenant['id']}").json()["user_count"] == 0, 20, 0.2,
               "the removed user's membership ends")
    audited(admin, "user_removed_from_tenant", user["id"], tenant_id=tenant["id"], reason="user_removed")
