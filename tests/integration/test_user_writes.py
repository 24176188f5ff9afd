"""Writes that span services (issue 19; docs/architecture.md): a user's create or change with `role`/`groups`
is owned by identity, which has rbac apply its part after committing and compensates when rbac refuses then.

rbac's refusal at apply time, deterministically: `unknown_groups` (the pre-check) knows `sysadmins`, but only a
super admin may put someone into that administrator group, which rbac finds out only when adding.
"""
import pytest

from tests.harness import PASSWORD, eventually
from tests.integration.test_isolation import switched
from tests.integration.test_tenancy import DEFAULT, make_user, new_tenant

USERS = "/api/v1/users"


@pytest.fixture(scope="module")
def root(platform):
    return platform.admin()


def new_user_body(name, **extra):
    return {"username": name, "email": f"{name}@example.com", "first_name": "Before", "last_name": "Write", **extra}


def audit_actions(root, user_id):
    return [event["action"] for event in root.audit(resource_id=user_id)]


def test_a_create_whose_groups_rbac_refuses_leaves_no_account(platform, root, unique):
    _, tenant_admin = make_user(platform, root, f"wa{unique}", role="admin")
    name = f"wc{unique}"
    refused = tenant_admin.post(USERS, json=new_user_body(name, role="viewer", groups=["sysadmins"]))
    assert refused.status_code == 403, refused.text  # rbac's own refusal, passed on unchanged
    assert root.get(USERS, params={"q": name}).json()["items"] == []
    # the name is free again, and the compensation is on record with the creation
    created = root.post(USERS, json=new_user_body(name, role="viewer"))
    assert created.status_code == 201, created.text
    assert created.json()["user"]["role"] == "viewer"


def test_a_change_whose_groups_rbac_refuses_leaves_the_user_unchanged(platform, root, unique):
    _, tenant_admin = make_user(platform, root, f"wb{unique}", role="admin")
    target, _ = make_user(platform, root, f"wt{unique}", role="viewer")
    path = f"{USERS}/{target['id']}"
    before = root.get(path).json()
    assert before["first_name"] != "After" and before["role"] == "viewer"

    refused = tenant_admin.patch(path, json={"first_name": "After", "role": "operator", "groups": ["sysadmins"]})
    assert refused.status_code == 403, refused.text
    after = root.get(path).json()
    assert after["first_name"] == before["first_name"]  # identity's half was undone
    assert after["role"] == "viewer"  # and the role rbac had already replaced is back
    assert "sysadmins" not in after["groups"]
    # audit and sync see the undo: the change, then the change back
    eventually(lambda: audit_actions(root, target["id"]).count("user_updated") >= 2, 20, 0.3, "both updates audited")


def test_a_suspension_whose_groups_rbac_refuses_leaves_the_user_active(platform, root, unique):
    _, tenant_admin = make_user(platform, root, f"wd{unique}", role="admin")
    target, _ = make_user(platform, root, f"ws{unique}", role="viewer")
    path = f"{USERS}/{target['id']}"
    refused = tenant_admin.patch(path, json={"status": "suspended", "groups": ["sysadmins"]})
    assert refused.status_code == 403, refused.text
    assert root.get(path).json()["status"] == "active"
    signed_in = platform.api().login(target["username"], PASSWORD)  # the sessions it ended stay ended
    assert signed_in.get("/api/v1/me").status_code == 200


def test_one_write_gives_role_and_groups_that_a_login_has_at_once(platform, root, unique):
    name = f"wg{unique}"
    created = root.post(USERS, json=new_user_body(name, role="operator", groups=["ldapusers"]))
    assert created.status_code == 201, created.text
    user = created.json()["user"]
    assert user["role"] == "operator" and "ldapusers" in user["groups"]
    shown = root.get(f"{USERS}/{user['id']}").json()
    assert shown["role"] == "operator" and "ldapusers" in shown["groups"]


def test_a_super_admin_changes_and_removes_only_users_of_the_active_tenant(platform, root, unique):
    """The 404 outside the active tenant comes from identity's read model now (one RPC less for super admins)."""
    target, _ = make_user(platform, root, f"wo{unique}")
    elsewhere = new_tenant(root, f"w{unique}")
    boss = platform.admin()  # a session of its own: the shared one stays in default
    switched(boss, elsewhere["id"])
    path = f"{USERS}/{target['id']}"
    for response in (boss.patch(path, json={"first_name": "Elsewhere", "role": "viewer"}), boss.delete(path)):
        assert response.status_code == 404, response.text
    switched(boss, DEFAULT)
    shown = boss.get(path).json()
    assert shown["first_name"] != "Elsewhere" and shown["status"] == "active"
    assert boss.delete(path).status_code == 204
    assert boss.get(path).status_code == 404
