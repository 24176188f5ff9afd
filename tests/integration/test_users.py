"""User administration through the gateway: create, edit, approve, suspend, remove, list."""
import pytest

from tests.harness import PASSWORD, eventually, register

USERS = "/api/v1/users"


def create(admin, name, **overrides):
    body = {"username": name, "email": f"{name}@example.com", "first_name": "Test", "last_name": name.title(),
            **overrides}
    return admin.post(USERS, json=body)


def audit_about(admin, user_id, action, timeout=20):
    return eventually(lambda: [e for e in admin.audit(resource_id=user_id) if e["action"] == action],
                      timeout, message=f"audit {action} of {user_id}")


def listed(admin, **params):
    response = admin.get(USERS, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def error_of(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_created_user_gets_a_password_shown_once_that_signs_in(platform, unique):
    admin, name = platform.admin(), f"c{unique}"
    response = create(admin, name, company="ACME", role="viewer", groups=["sysadmins"])
    assert response.status_code == 201, response.text
    body = response.json()
    user, password = body["user"], body["password"]
    assert response.headers["Location"] == f"{USERS}/{user['id']}"
    assert len(password) >= 20
    assert user["status"] == "active" and user["must_change_password"] is True
    assert user["username"] == name and user["company"] == "ACME" and user["full_name"] == f"Test {name.title()}"
    assert user["uid_number"] >= 10000 and user["role"] == "viewer" and "sysadmins" in user["groups"]
    assert user["totp_enrolled"] is False and user["version"] == 1 and user["last_login_at"] is None

    platform.api().login(name, password)
    stored = admin.get(response.headers["Location"])
    assert stored.status_code == 200 and password not in stored.text and '"password"' not in stored.text
    assert stored.json()["last_login_at"] is not None
    # rbac enrols every new user in ldapusers on identity's event; the list's role comes from a read model.
    eventually(lambda: "ldapusers" in admin.get(f"{USERS}/{user['id']}").json()["groups"], 20, message="ldapusers")
    eventually(lambda: [u["role"] for u in listed(admin, q=name)["items"]] == ["viewer"], 20, message="role column")

    [created] = audit_about(admin, user["id"], "user_created")
    assert created["actor"]["username"] == "rootadmin" and created["data"]["username"] == name
    assert password not in str(admin.audit(resource_id=user["id"]))


@pytest.mark.parametrize("overrides, field", [
    ({"username": "root"}, "username"),
    ({"username": "Bad Name"}, "username"),
    ({"username": "9lives"}, "username"),
    ({"email": "not-an-address"}, "email"),
    ({"first_name": "  "}, "first_name"),
    ({"company": "x" * 129}, "company"),
    ({"surprise": 1}, "surprise"),
])
def test_create_refuses_invalid_fields_naming_them(platform, unique, overrides, field):
    error = error_of(create(platform.admin(), f"v{unique}", **overrides), 422)
    assert error["code"] == "validation_error" and field in str(error["details"])


def test_create_refuses_reserved_names_with_the_reason(platform):
    error = error_of(create(platform.admin(), "admin", email="someone-else@example.com"), 422)
    assert error["details"]["json"]["username"] == ["is reserved for the system"]


def test_unknown_role_or_group_creates_nothing(platform, unique):
    admin = platform.admin()
    role = error_of(create(admin, f"r{unique}", role="emperor"), 422)
    assert role["code"] == "unknown_role"
    group = error_of(create(admin, f"g{unique}", groups=["ldapusers", f"nogroup{unique}"]), 422)
    assert group["code"] == "unknown_group" and f"nogroup{unique}" in group["details"]["groups"]
    assert listed(admin, q=unique)["total"] == 0


def test_duplicate_username_or_email_is_a_conflict_naming_the_field(platform, unique):
    admin = platform.admin()
    assert create(admin, f"a{unique}").status_code == 201
    same_name = error_of(create(admin, f"a{unique}", email=f"other{unique}@example.com"), 409)
    assert same_name["code"] == "user_exists" and list(same_name["details"]) == ["username"]
    same_mail = error_of(create(admin, f"b{unique}", email=f"A{unique}@EXAMPLE.com"), 409)
    assert list(same_mail["details"]) == ["email"]

    other = create(admin, f"c{unique}").json()["user"]
    for field, value in (("username", f"a{unique}"), ("email", f"a{unique}@example.com")):
        error = error_of(admin.patch(f"{USERS}/{other['id']}", json={field: value}), 409)
        assert error["code"] == "user_exists" and list(error["details"]) == [field]


def test_edit_with_etag_and_if_match(platform, unique):
    admin, name = platform.admin(), f"e{unique}"
    user = create(admin, name).json()["user"]
    read = admin.get(f"{USERS}/{user['id']}")
    assert read.headers["ETag"] == '"1"'

    renamed = f"r{unique}"
    changed = admin.patch(f"{USERS}/{user['id']}", headers={"If-Match": read.headers["ETag"]},
                          json={"first_name": " Erin ", "company": "Initech", "username": renamed,
                                "email": f"{renamed}@Example.com"})
    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] == '"2"'
    body = changed.json()
    assert body["first_name"] == "Erin" and body["full_name"] == f"Erin {name.title()}"
    assert body["username"] == renamed and body["email"] == f"{renamed}@example.com"
    assert body["version"] == 2 and body["updated_at"] is not None

    stale = error_of(admin.patch(f"{USERS}/{user['id']}", headers={"If-Match": '"1"'}, json={"company": "Late"}), 412)
    assert stale["code"] == "precondition_failed"
    assert admin.get(f"{USERS}/{user['id']}").json()["company"] == "Initech"
    assert admin.patch(f"{USERS}/{user['id']}", headers={"If-Match": "*"}, json={"company": "Any"}).status_code == 200

    assert error_of(admin.patch(f"{USERS}/{user['id']}", json={"email": "broken"}), 422)["details"]["json"]["email"]
    assert error_of(admin.patch(f"{USERS}/{user['id']}", json={"username": "root"}), 422)["details"]["json"]["username"]
    assert error_of(admin.patch(f"{USERS}/{user['id']}", json={"last_name": ""}), 422)["details"]
    assert admin.patch(f"{USERS}/no-such-user", json={"company": "x"}).status_code == 404

    [first] = eventually(lambda: [e for e in admin.audit(resource_id=user["id"], action="user_updated")
                                  if "username" in e["data"]["changed"]], 20, message="the rename audited")
    assert first["data"]["changed"]["username"] == {"from": name, "to": renamed}
    assert first["data"]["changed"]["first_name"] == {"from": "Test", "to": "Erin"}
    assert "last_name" not in first["data"]["changed"]
    # the search text follows the rename
    assert [u["id"] for u in listed(admin, q=renamed)["items"]] == [user["id"]]
    assert listed(admin, q=f"{name}@example.com")["total"] == 0  # the old email is no longer searchable


def test_approval_with_role_and_groups_lets_the_user_sign_in(platform, unique):
    admin, name = platform.admin(), f"p{unique}"
    pending = register(platform.api(), name).json()
    assert platform.api().post("/api/v1/auth/login", json={"login": name, "password": PASSWORD}).status_code == 401
    approved = admin.patch(f"{USERS}/{pending['id']}",
                           json={"status": "active", "role": "operator", "groups": ["sysadmins"]})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "active" and approved.json()["role"] == "operator"
    assert "sysadmins" in approved.json()["groups"]
    me = platform.api().login(name, PASSWORD).get("/api/v1/me")
    assert me.status_code == 200 and me.json()["username"] == name

    [change] = audit_about(admin, pending["id"], "user_status_changed")
    assert change["data"]["from"] == "pending" and change["data"]["to"] == "active"
    assert change["data"]["kind"] == "approved"
    assert audit_about(admin, pending["id"], "role_assigned")[0]["data"]["role"] == "operator"


def test_refused_approval_changes_nothing(platform, unique):
    admin, name = platform.admin(), f"n{unique}"
    pending = register(platform.api(), name).json()
    refused = admin.patch(f"{USERS}/{pending['id']}", json={"status": "active", "groups": [f"no{unique}"]})
    assert error_of(refused, 422)["code"] == "unknown_group"
    assert admin.get(f"{USERS}/{pending['id']}").json()["status"] == "pending"


def test_status_changes_outside_the_lifecycle_are_refused(platform, unique):
    admin = platform.admin()
    user = create(admin, f"s{unique}").json()["user"]
    error = error_of(admin.patch(f"{USERS}/{user['id']}", json={"status": "pending"}), 409)
    assert error["code"] == "invalid_status_change"
    assert error["details"]["from"] == "active" and error["details"]["to"] == "pending"
    bad = error_of(admin.patch(f"{USERS}/{user['id']}", json={"status": "invited"}), 422)
    assert "status" in str(bad["details"])


def test_suspension_cuts_access_and_reactivation_restores_it(platform, unique):
    admin, name = platform.admin(), f"z{unique}"
    user, session = platform.create_user(name, admin=admin)  # registered, then approved
    user_id = user["id"]
    assert session.get("/api/v1/me").status_code == 200

    suspended = admin.patch(f"{USERS}/{user_id}", json={"status": "suspended"})
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    # The gateway's session cache forgets the user on identity's event: moments, not at once.
    eventually(lambda: session.get("/api/v1/me").status_code == 401, 5, message="suspended session refused")
    login = platform.api().post("/api/v1/auth/login", json={"login": name, "password": PASSWORD})
    assert error_of(login, 401)["code"] == "account_not_active"

    assert admin.patch(f"{USERS}/{user_id}", json={"status": "active"}).status_code == 200
    assert platform.api().login(name, PASSWORD).get("/api/v1/me").status_code == 200
    eventually(lambda: {"approved", "active_to_suspended", "suspended_to_active"} <= {
        e["data"]["kind"] for e in admin.audit(resource_id=user_id, action="user_status_changed")},
        20, message="every status change audited")


def test_removal_deletes_the_account_and_keeps_its_history(platform, unique):
    admin, name = platform.admin(), f"x{unique}"
    user, session = platform.create_user(name, admin=admin)  # registered, then approved
    user_id = user["id"]
    eventually(lambda: "ldapusers" in admin.get(f"{USERS}/{user_id}").json()["groups"], 20, message="enrolled")
    removed = admin.delete(f"{USERS}/{user_id}")
    assert removed.status_code == 204 and removed.content == b""
    assert admin.get(f"{USERS}/{user_id}").status_code == 404
    assert admin.delete(f"{USERS}/{user_id}").status_code == 404
    eventually(lambda: session.get("/api/v1/me").status_code == 401, 5, message="removed user's session refused")
    login = platform.api().post("/api/v1/auth/login", json={"login": name, "password": PASSWORD})
    assert error_of(login, 401)["code"] == "invalid_credentials"
    assert listed(admin, q=name)["total"] == 0

    [gone] = audit_about(admin, user_id, "user_removed")
    assert gone["resource"]["name"] == name and gone["actor"]["username"] == "rootadmin"
    [own_login, *_] = audit_about(admin, user_id, "login_succeeded")
    assert own_login["actor"]["username"] == name and own_login["actor"]["user_id"] == user_id
    # rbac forgets the account's ldapusers membership on the event
    eventually(lambda: [e for e in admin.audit(action="member_removed") if e["data"]["user_id"] == user_id],
               20, message="membership dropped")


def test_nobody_removes_or_suspends_their_own_account(platform, unique):
    admin = platform.admin()
    user, other_admin = platform.create_user(f"o{unique}", role="admin", admin=admin)
    user_id = user["id"]
    for response in (other_admin.delete(f"{USERS}/{user_id}"),
                     other_admin.patch(f"{USERS}/{user_id}", json={"status": "suspended"})):
        assert error_of(response, 403)["code"] == "own_account"
    assert admin.get(f"{USERS}/{user_id}").json()["status"] == "active"


def test_the_first_admin_is_protected(platform, unique):
    admin = platform.admin()
    root_id = admin.get("/api/v1/me").json()["id"]
    _, other_admin = platform.create_user(f"f{unique}", role="admin", admin=admin)
    assert error_of(admin.delete(f"{USERS}/{root_id}"), 403)["code"] == "own_account"
    # a tenant admin never reaches a super admin's account at all (docs/security.md)
    for response in (other_admin.delete(f"{USERS}/{root_id}"),
                     other_admin.patch(f"{USERS}/{root_id}", json={"status": "suspended"}),
                     other_admin.patch(f"{USERS}/{root_id}", json={"role": "viewer"})):
        assert error_of(response, 403)["code"] == "outside_authority"
    assert error_of(admin.patch(f"{USERS}/{root_id}", json={"role": "admin"}), 403)["code"] == "first_admin_protected"
    root = admin.get(f"{USERS}/{root_id}").json()
    assert root["status"] == "active" and root["role"] == "super_admin"
    # unchanged role: not a role change
    assert admin.patch(f"{USERS}/{root_id}", json={"role": "super_admin"}).status_code == 200


def test_list_search_filter_sort_and_paging(platform, unique):
    admin, marker = platform.admin(), f"mk{unique}"
    firsts = ["Dora", "Anna", "Emil", "Carl", "Boris"]
    ids = {}
    for i, first in enumerate(firsts):
        name = f"l{i}{unique}"
        user = create(admin, name, first_name=first, last_name=f"Lastname{marker}").json()["user"]
        ids[first] = user["id"]
    admin.patch(f"{USERS}/{ids['Carl']}", json={"status": "suspended"})
    for first in ("Anna", "Emil"):
        assert admin.patch(f"{USERS}/{ids[first]}", json={"role": "viewer"}).status_code == 200

    everyone = listed(admin, q=marker.upper())
    assert everyone["total"] == 5 and everyone["next_cursor"] is None
    assert {u["id"] for u in everyone["items"]} == set(ids.values())
    assert listed(admin, q=f"l3{unique}@example")["items"][0]["id"] == ids["Carl"]  # by email
    assert [u["first_name"] for u in listed(admin, q=marker, status="suspended")["items"]] == ["Carl"]
    eventually(lambda: sorted(u["first_name"] for u in listed(admin, q=marker, role="viewer")["items"])
               == ["Anna", "Emil"], 20, message="role filter")

    assert [u["first_name"] for u in listed(admin, q=marker, sort="name", order="asc")["items"]] == sorted(firsts)
    assert [u["first_name"] for u in listed(admin, q=marker, sort="name", order="desc")["items"]] == \
        sorted(firsts, reverse=True)
    by_username = [u["username"] for u in listed(admin, q=marker, sort="username", order="asc")["items"]]
    assert by_username == sorted(by_username) and len(by_username) == 5
    by_status = [u["status"] for u in listed(admin, q=marker, sort="status", order="desc")["items"]]
    assert by_status == ["suspended", "active", "active", "active", "active"]
    by_role = [u["role"] for u in listed(admin, q=marker, sort="role", order="asc")["items"]]
    assert by_role[:2] == ["viewer", "viewer"] and by_role[2:] == [None, None, None]  # no role: last
    created = [u["created_at"] for u in listed(admin, q=marker, sort="created_at", order="asc")["items"]]
    assert created == sorted(created)
    for sort in ("email", "totp_enrolled", "last_login_at"):
        assert listed(admin, q=marker, sort=sort)["total"] == 5

    seen, cursor, pages = [], None, 0
    while True:
        page = listed(admin, q=marker, sort="name", order="asc", limit=2, **({"cursor": cursor} if cursor else {}))
        assert page["total"] == 5
        seen += [u["first_name"] for u in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and seen == sorted(firsts)


@pytest.mark.parametrize("params, field", [
    ({"sort": "password"}, "sort"),
    ({"order": "sideways"}, "order"),
    ({"status": "gone"}, "status"),
    ({"limit": 0}, "limit"),
    ({"limit": 201}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
])
def test_list_refuses_invalid_parameters_naming_them(platform, params, field):
    error = error_of(platform.admin().get(USERS, params=params), 422)
    assert field in str(error["details"])


def test_user_administration_needs_admin_users(platform, unique):
    admin = platform.admin()
    _, viewer = platform.create_user(f"w{unique}", role="viewer", admin=admin)
    anonymous = platform.api()
    some_id = admin.get("/api/v1/me").json()["id"]
    for method, path, body in (("GET", USERS, None), ("POST", USERS, {"username": f"q{unique}"}),
                               ("PATCH", f"{USERS}/{some_id}", {"company": "x"}),
                               ("DELETE", f"{USERS}/{some_id}", None)):
        assert anonymous.request(method, path, json=body).status_code == 401
        refused = viewer.request(method, path, json=body)
        assert error_of(refused, 403)["details"]["permission"] == "admin.users"


def test_openapi_documents_user_administration(platform):
    spec = platform.api().get("/api/v1/openapi.json").json()
    assert {"get", "post"} <= set(spec["paths"]["/api/v1/users"])
    assert {"get", "patch", "delete"} <= set(spec["paths"]["/api/v1/users/{user_id}"])
