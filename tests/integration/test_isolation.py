"""Sessions live in a tenant: login lands in the user's default one, switching is per session,
a tenant the session lost answers 403 tenant_unavailable, and users are confined to the active
tenant (404 outside it, 403 cross_tenant_user for a change to a user of tenants one does not
administer). Tenancy is enabled once for the shared platform (like test_tenancy); `default`
behaves as before.
"""
import pytest

from tests.harness import eventually
from tests.integration.test_connections import create as create_connection
from tests.integration.test_rbac import audited, error_of
from tests.integration.test_tenancy import DEFAULT, make_user, member, new_tenant, role_becomes

NEW_PASSWORD = "another long passphrase 2"


@pytest.fixture(scope="module")
def root(platform):
    return platform.admin()


def switch(api, tenant_id):
    return api.post("/api/v1/me/tenant", json={"tenant_id": tenant_id})


def switched(api, tenant_id):
    answer = switch(api, tenant_id)
    assert answer.status_code == 200, answer.text
    return api


def me(api) -> dict:
    answer = api.get("/api/v1/me")
    assert answer.status_code == 200, answer.text
    return answer.json()


def user_ids(api, **params) -> set:
    answer = api.get("/api/v1/users", params={"limit": 200, **params})
    assert answer.status_code == 200, answer.text
    return {user["id"] for user in answer.json()["items"]}


def user_in(platform, root, tenant_id, name, role):
    """A user a super admin creates in `tenant_id` (their session switched there), signed in."""
    switched(root, tenant_id)
    try:
        created = root.post("/api/v1/users", json={"username": name, "email": f"{name}@example.com",
                                                   "first_name": "Iso", "last_name": name.title(), "role": role})
        assert created.status_code == 201, created.text
    finally:
        switched(root, DEFAULT)
    api = platform.api().login(name, created.json()["password"])
    changed = api.post("/api/v1/me/password", json={"current_password": api.password, "new_password": NEW_PASSWORD})
    assert changed.status_code == 204, changed.text
    api = platform.api().login(name, NEW_PASSWORD)
    eventually(lambda: api.get("/api/v1/users/" + created.json()["user"]["id"]).status_code in (200, 403), 20, 0.2)
    return created.json()["user"], api


@pytest.fixture(scope="module")
def world(platform, root):
    """Tenants A and B, each with its admin, a user and a connection; a user in both."""
    from uuid import uuid4
    tag = uuid4().hex[:6]
    a, b = new_tenant(root, f"Iso A {tag}"), new_tenant(root, f"Iso B {tag}")
    admin_a, admin_a_api = user_in(platform, root, a["id"], f"isoadma{tag}", "admin")
    admin_b, admin_b_api = user_in(platform, root, b["id"], f"isoadmb{tag}", "admin")
    user_a, _ = user_in(platform, root, a["id"], f"isousera{tag}", "viewer")
    user_b, user_b_api = user_in(platform, root, b["id"], f"isouserb{tag}", "viewer")
    shared, shared_api = user_in(platform, root, a["id"], f"isoshared{tag}", "viewer")
    assert member(root, b["id"], shared["id"], "viewer").status_code == 201
    role_becomes(root, shared["id"], b["id"], "viewer")
    conn_a = create_connection(root, name=f"iso-a-{tag}", tenant_id=a["id"])
    conn_b = create_connection(root, name=f"iso-b-{tag}", tenant_id=b["id"])
    return {"a": a, "b": b, "admin_a": (admin_a, admin_a_api), "admin_b": (admin_b, admin_b_api),
            "user_a": user_a, "user_b": (user_b, user_b_api), "shared": (shared, shared_api),
            "conn_a": conn_a, "conn_b": conn_b}


def test_login_lands_in_the_default_tenant_and_switching_is_per_session(platform, root, world, unique):
    a = world["a"]
    user, first = make_user(platform, root, f"sw{unique}", role="admin")
    assert member(root, a["id"], user["id"], "admin").status_code == 201
    role_becomes(root, user["id"], a["id"], "admin")
    second = platform.api().login(f"sw{unique}", first.password)
    assert me(first)["tenant_id"] == me(second)["tenant_id"] == DEFAULT
    mine = first.get("/api/v1/me/tenants").json()
    assert [t["tenant_id"] for t in mine["items"]] == [DEFAULT, a["id"]] and mine["active_tenant_id"] == DEFAULT
    assert [t["is_default"] for t in mine["items"]] == [True, False]

    assert switched(first, a["id"]).get("/api/v1/me").json()["tenant_id"] == a["id"]
    assert me(second)["tenant_id"] == DEFAULT  # the other session keeps its tenant
    in_a = user_ids(first)
    assert world["user_a"]["id"] in in_a and user["id"] in in_a and world["user_b"][0]["id"] not in in_a
    assert user_ids(second) >= {user["id"]} and world["user_a"]["id"] not in user_ids(second)
    listed = lambda api: {c["id"] for c in api.get("/api/v1/connections", params={"limit": 200}).json()["items"]}
    assert world["conn_a"]["id"] in listed(first) and world["conn_a"]["id"] not in listed(second)
    assert world["conn_b"]["id"] not in listed(first)
    assert first.get("/api/v1/me/tenants").json()["active_tenant_id"] == a["id"]

    error_of(switch(first, world["b"]["id"]), 404, "tenant_not_found")  # not theirs: as if it did not exist
    error_of(switch(first, "no-such-tenant"), 404, "tenant_not_found")
    record = audited(root, "tenant_switched", user["id"])
    assert record["data"]["from"] == DEFAULT and record["data"]["to"] == a["id"]
    assert set(record["tenant_ids"]) == {DEFAULT, a["id"]}


def test_a_session_whose_tenant_went_away_is_refused_until_it_switches(platform, root, unique):
    user, api = make_user(platform, root, f"gone{unique}", role="admin")
    c = new_tenant(root, f"Gone {unique}")
    d = new_tenant(root, f"Going {unique}")
    for tenant in (c, d):
        assert member(root, tenant["id"], user["id"], "admin").status_code == 201
        role_becomes(root, user["id"], tenant["id"], "admin")

    switched(api, c["id"])
    assert api.get("/api/v1/users").status_code == 200
    assert root.delete(f"/api/v1/tenants/{c['id']}/users/{user['id']}").status_code == 204
    eventually(lambda: api.get("/api/v1/users").status_code == 403, 20, 0.2, "membership ended")
    refused = error_of(api.get("/api/v1/users"), 403, "tenant_unavailable")
    assert "switch" in refused["message"]
    error_of(api.get("/api/v1/connections"), 403, "tenant_unavailable")  # never a silent fall-back
    assert me(api)["tenant_id"] == c["id"]
    assert c["id"] not in [t["tenant_id"] for t in api.get("/api/v1/me/tenants").json()["items"]]
    error_of(switch(api, c["id"]), 404, "tenant_not_found")
    assert switched(api, d["id"]).get("/api/v1/users").status_code == 200

    assert root.delete(f"/api/v1/tenants/{d['id']}").status_code == 204
    eventually(lambda: api.get("/api/v1/users").status_code == 403, 20, 0.2, "tenant deleted")
    error_of(api.get("/api/v1/users"), 403, "tenant_unavailable")
    assert switched(api, DEFAULT).get("/api/v1/users").status_code == 200


def test_a_tenant_admin_cannot_see_or_change_users_of_another_tenant(world):
    _, admin_a = world["admin_a"]
    user_b = world["user_b"][0]
    assert user_b["id"] not in user_ids(admin_a)
    assert world["user_a"]["id"] in user_ids(admin_a)
    target = f"/api/v1/users/{user_b['id']}"
    for response in (admin_a.get(target), admin_a.patch(target, json={"company": "taken"}), admin_a.delete(target),
                     admin_a.get(f"{target}/sessions"), admin_a.delete(f"{target}/sessions"),
                     admin_a.post(f"{target}/unlock"), admin_a.post(f"{target}/password-reset", json={"method": "random"}),
                     admin_a.get(f"{target}/roles"), admin_a.get(f"{target}/groups")):
        error_of(response, 404, "not_found")
    error_of(admin_a.get("/api/v1/users/no-such-user"), 404, "not_found")  # the same answer: ids cannot be probed


def test_a_user_of_two_tenants_is_changed_only_by_an_administrator_of_both(platform, root, world, unique):
    shared, _ = world["shared"]
    _, admin_a = world["admin_a"]
    b = world["b"]
    target = f"/api/v1/users/{shared['id']}"
    assert admin_a.get(target).status_code == 200  # visible: a member of A
    for response in (admin_a.patch(target, json={"company": "takeover"}), admin_a.delete(target),
                     admin_a.delete(f"{target}/sessions"), admin_a.post(f"{target}/unlock"),
                     admin_a.post(f"{target}/password-reset", json={"method": "random"}),
                     admin_a.patch(target, json={"status": "suspended"})):
        refused = error_of(response, 403, "cross_tenant_user")
        assert b["id"] not in response.text and b["name"] not in response.text
    assert admin_a.get(target).json()["company"] != "takeover"

    both, both_api = user_in(platform, root, world["a"]["id"], f"isoboth{unique}", "admin")
    assert member(root, b["id"], both["id"], "admin").status_code == 201
    role_becomes(root, both["id"], b["id"], "admin")
    changed = both_api.patch(target, json={"company": "both tenants"})
    assert changed.status_code == 200, changed.text
    switched(root, world["a"]["id"])
    try:
        assert root.patch(target, json={"company": "super"}).json()["company"] == "super"
        assert root.post(f"{target}/unlock").status_code == 204
    finally:
        switched(root, DEFAULT)


def test_a_super_admin_reaches_users_of_another_tenant_by_switching_or_the_cross_tenant_view(root, world):
    user_b = world["user_b"][0]
    error_of(root.get(f"/api/v1/users/{user_b['id']}"), 404, "not_found")  # not in root's active tenant
    everyone = root.get("/api/v1/users", params={"tenant": "*", "limit": 200, "q": user_b["username"]}).json()
    row = next(u for u in everyone["items"] if u["id"] == user_b["id"])
    assert row["tenants"] == [{"tenant_id": world["b"]["id"], "role": "viewer", "is_default": True}]
    assert row["status"] == "active" and "last_login_at" in row and "invitation_status" in row
    shared = world["shared"][0]
    shared_row = root.get("/api/v1/users", params={"tenant": "*", "q": shared["username"]}).json()["items"][0]
    assert {t["tenant_id"] for t in shared_row["tenants"]} == {world["a"]["id"], world["b"]["id"]}
    in_b = user_ids(root, tenant=world["b"]["id"])
    assert user_b["id"] in in_b and shared["id"] in in_b and world["user_a"]["id"] not in in_b
    error_of(root.get("/api/v1/users", params={"tenant": "no-such-tenant"}), 404, "tenant_not_found")
    refused = error_of(world["admin_a"][1].get("/api/v1/users", params={"tenant": "*"}), 403, "permission_denied")
    assert "tenant" in refused["details"]
    assert switched(root, world["b"]["id"]).get(f"/api/v1/users/{user_b['id']}").status_code == 200
    switched(root, DEFAULT)


def test_connections_audit_and_roles_of_another_tenant_are_invisible(world):
    _, admin_a = world["admin_a"]
    b, conn_b = world["b"], world["conn_b"]
    error_of(admin_a.get(f"/api/v1/connections/{conn_b['id']}"), 404, "connection_not_found")
    for path in ("/api/v1/connections", "/api/v1/roles", "/api/v1/tenants", "/api/v1/users",
                 f"/api/v1/users/{world['shared'][0]['id']}/roles", "/api/v1/me/tenants"):
        nothing_of_b_in(world, admin_a.get(path, params={"limit": 200}))


def test_invitations_of_another_tenant_are_invisible_and_untouchable(root, world, mailbox, unique):
    assert root.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    _, admin_a = world["admin_a"]
    _, admin_b = world["admin_b"]
    email = f"isoinv{unique}@example.com"
    sent = admin_b.post("/api/v1/invitations", json={"emails": email, "role": "viewer"})
    assert sent.status_code == 201, sent.text
    [invitation] = sent.json()["items"]
    assert invitation["id"] in admin_b.get("/api/v1/invitations", params={"limit": 200}).text
    listed = admin_a.get("/api/v1/invitations", params={"limit": 200})
    assert listed.status_code == 200 and invitation["id"] not in listed.text and email not in listed.text
    error_of(admin_a.get(f"/api/v1/invitations/{invitation['id']}"), 404, "invitation_not_found")
    error_of(admin_a.post(f"/api/v1/invitations/{invitation['id']}/resend"), 404, "invitation_not_found")
    error_of(admin_a.delete(f"/api/v1/invitations/{invitation['id']}"), 404, "invitation_not_found")
    assert admin_b.get(f"/api/v1/invitations/{invitation['id']}").json()["status"] == "pending"


UNKNOWN_GROUP = "0e7bd1c6-0000-4000-8000-00000000beef"


UNKNOWN_ID = "00000000-0000-4000-8000-00000000abcd"


def same_answer(foreign, unknown, foreign_id, unknown_id=UNKNOWN_ID):
    """Both answers alike but for the id they echo: nothing tells the foreign object exists."""
    assert foreign.status_code == unknown.status_code and foreign.status_code >= 400, (foreign.text, unknown.text)
    assert foreign.text.replace(foreign_id, "<id>") == unknown.text.replace(unknown_id, "<id>")


def test_reproduction_3_a_tenant_admin_cannot_list_read_change_or_empty_another_tenants_group(root, world, unique):
    """Issue 17, reproduction 3: T1's admin listed T2's groups with their descriptions, read their
    members, renamed them, added T1 users, removed T2 members and deleted T2's group."""
    _, admin_a = world["admin_a"]
    _, admin_b = world["admin_b"]
    user_a, (user_b, _), shared = world["user_a"], world["user_b"], world["shared"][0]
    cn, description = f"isob{unique}", f"B's confidential team {unique}"
    created = admin_b.post("/api/v1/groups", json={"cn": cn, "description": description})
    assert created.status_code == 201, created.text
    group = created.json()
    assert (group["tenant_id"], group["platform"]) == (world["b"]["id"], False)
    assert admin_b.post(f"/api/v1/groups/{group['id']}/members", json={"user_id": user_b["id"]}).status_code == 201
    # a member of both tenants is beyond either tenant admin's authority: a super admin adds them
    switched(root, world["b"]["id"])
    try:
        assert root.post(f"/api/v1/groups/{group['id']}/members", json={"user_id": shared["id"]}).status_code == 201
    finally:
        switched(root, DEFAULT)

    listed = admin_a.get("/api/v1/groups", params={"limit": 200})
    assert listed.status_code == 200
    assert group["id"] not in listed.text and cn not in listed.text and description not in listed.text
    assert {g["cn"] for g in listed.json()["items"] if g["platform"]} >= {"ldapusers", "sysadmins"}
    shared_groups = admin_a.get(f"/api/v1/users/{shared['id']}/groups")  # a member of both tenants
    assert shared_groups.status_code == 200 and cn not in shared_groups.text

    theirs, unknown = f"/api/v1/groups/{group['id']}", f"/api/v1/groups/{UNKNOWN_GROUP}"
    probes = (
        lambda path: admin_a.get(path),
        lambda path: admin_a.patch(path, json={"cn": f"stolen{unique}", "description": "mine"}),
        lambda path: admin_a.get(f"{path}/members", params={"limit": 200}),
        lambda path: admin_a.get(f"{path}/members/{user_b['id']}"),
        lambda path: admin_a.post(f"{path}/members", json={"user_id": user_a["id"]}),
        lambda path: admin_a.delete(f"{path}/members/{user_b['id']}"),
        lambda path: admin_a.delete(f"{path}/members/{shared['id']}"),
        lambda path: admin_a.delete(path),
    )
    for probe in probes:
        answer = probe(theirs)
        error_of(answer, 404, "group_not_found")
        same_answer(answer, probe(unknown), group["id"], UNKNOWN_GROUP)
        assert description not in answer.text and user_b["username"] not in answer.text

    kept = admin_b.get(theirs)
    assert kept.status_code == 200 and (kept.json()["cn"], kept.json()["description"]) == (cn, description)
    members = admin_b.get(f"{theirs}/members", params={"limit": 200}).json()["items"]
    assert {m["user_id"] for m in members} == {user_b["id"], shared["id"]}

    # A's group takes A's members only: B's user answers like an unknown user
    mine = admin_a.post("/api/v1/groups", json={"cn": f"isoa{unique}"})
    assert mine.status_code == 201, mine.text
    add = f"/api/v1/groups/{mine.json()['id']}/members"
    nobody = "0e7bd1c6-0000-4000-8000-00000000cafe"
    same_answer(admin_a.post(add, json={"user_id": user_b["id"]}), admin_a.post(add, json={"user_id": nobody}),
                user_b["id"], nobody)
    assert admin_a.post(add, json={"user_id": user_a["id"]}).status_code == 201
    # and B cannot reach it either
    error_of(admin_b.get(f"/api/v1/groups/{mine.json()['id']}"), 404, "group_not_found")

    # names and GIDs are the directory's: taken, and nothing more said about B's group
    taken = admin_a.post("/api/v1/groups", json={"cn": cn})
    error_of(taken, 409, "group_exists")
    gid = admin_a.post("/api/v1/groups", json={"cn": f"isoc{unique}", "gid_number": group["gid_number"]})
    error_of(gid, 409, "gid_taken")
    for answer in (taken, gid):
        assert description not in answer.text and group["id"] not in answer.text and world["b"]["id"] not in answer.text
    assert cn not in gid.text  # a GID's holder is named only when the asking tenant sees it

    # platform-wide groups: seen, not changed, by a tenant admin
    ldapusers = next(g for g in listed.json()["items"] if g["cn"] == "ldapusers")
    error_of(admin_a.patch(f"/api/v1/groups/{ldapusers['id']}", json={"description": "ours"}), 403,
             "platform_group_protected")
    error_of(admin_a.post("/api/v1/groups", json={"cn": f"isop{unique}", "platform": True}), 403, "super_admin_only")
    everyone = admin_a.get(f"/api/v1/groups/{ldapusers['id']}/members", params={"limit": 200})
    assert user_a["id"] in everyone.text and user_b["id"] not in everyone.text  # the tenant's members only

    # B's group events are in B's audit trail, never in A's
    audited(admin_b, "group_created", group["id"])
    audited(admin_b, "member_added", group["id"], user_id=user_b["id"])
    trail = admin_a.get("/api/v1/audit/events", params={"limit": 200})
    assert trail.status_code == 200 and group["id"] not in trail.text and description not in trail.text
    assert cn not in trail.text


def test_the_audit_view_of_a_tenant_shows_nothing_of_another(world):
    nothing_of_b_in(world, world["admin_a"][1].get("/api/v1/audit/events", params={"limit": 200}))


def nothing_of_b_in(world, answer):
    assert answer.status_code == 200, answer.text
    b, conn_b, user_b = world["b"], world["conn_b"], world["user_b"][0]
    for secret in (b["id"], b["name"], conn_b["id"], conn_b["name"], user_b["id"], user_b["username"]):
        assert secret not in answer.text, (answer.url, secret)


# --- issue 17, items 4 and 5: placeholders stay in their tenant, no oracles ----------------------------



def test_another_tenants_invitee_cannot_be_taken_and_registers_into_the_inviting_tenant_only(
        platform, root, world, mailbox, unique):
    from tests.mailbox import Mailbox
    assert root.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    a, b = world["a"], world["b"]
    _, admin_a = world["admin_a"]
    _, admin_b = world["admin_b"]
    email = f"isoinvitee{unique}@example.com"
    sent = admin_b.post("/api/v1/invitations", json={"emails": email, "role": "viewer"})
    assert sent.status_code == 201, sent.text
    placeholder = sent.json()["items"][0]["user_id"]

    # At once (before tenancy may have heard of the invitation) and later: as if it did not exist.
    target = lambda user_id: f"/api/v1/tenants/{a['id']}/users/{user_id}"
    same_answer(admin_a.put(target(placeholder), json={"role": "viewer"}),
                admin_a.put(target(UNKNOWN_ID), json={"role": "viewer"}), placeholder)
    eventually(lambda: root.get(f"/api/v1/tenants/{b['id']}/users/{placeholder}").status_code == 200, 20, 0.2,
               "the placeholder is a member of the inviting tenant")
    same_answer(admin_a.put(target(placeholder), json={"role": "viewer"}),
                admin_a.put(target(UNKNOWN_ID), json={"role": "viewer"}), placeholder)
    user_b = world["user_b"][0]["id"]  # an active user of B answers the same too (it said user_not_found)
    same_answer(admin_a.put(target(user_b), json={"role": "viewer"}),
                admin_a.put(target(UNKNOWN_ID), json={"role": "viewer"}), user_b)

    token = Mailbox.link(mailbox.wait_for(email)[0])[1]
    registered = platform.api().post("/api/v1/auth/register", json={
        "invitation_token": token, "username": f"isoinvitee{unique}", "first_name": "Ivy", "last_name": "Invitee",
        "password": NEW_PASSWORD})
    assert registered.status_code == 201, registered.text
    invitee = platform.api().login(f"isoinvitee{unique}", NEW_PASSWORD)
    assert me(invitee)["tenant_id"] == b["id"]
    assert [t["tenant_id"] for t in invitee.get("/api/v1/me/tenants").json()["items"]] == [b["id"]]
    error_of(root.get(f"/api/v1/tenants/{a['id']}/users/{placeholder}"), 404, "not_a_member")
    row = root.get("/api/v1/users", params={"tenant": "*", "q": f"isoinvitee{unique}"}).json()["items"][0]
    assert [t["tenant_id"] for t in row["tenants"]] == [b["id"]]


def test_a_tenants_audit_view_names_no_other_tenant_and_no_foreign_group(platform, root, world, slapd, unique):
    from tests.integration.test_sync import REALM, TOKEN_ID, TOKEN_SECRET, _standin, directory_settings
    a, b = world["a"], world["b"]
    _, admin_a = world["admin_a"]
    _, admin_b = world["admin_b"]
    shared, shared_api = world["shared"]
    assert root.put("/api/v1/settings/ldap", json=directory_settings(slapd)).status_code == 200
    with _standin() as pve:
        conn = create_connection(root, name=f"iso-sync-{unique}", url=pve.url, fingerprint=pve.fingerprint,
                                 realm=REALM, auth={"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET},
                                 tenant_id=a["id"])
        realm = root.post(f"/api/v1/connections/{conn['id']}/realm", json={})
        assert realm.status_code == 200, realm.text
        # A user of both tenants switches between them: the records name both tenants.
        switched(shared_api, b["id"])
        switched(shared_api, a["id"])
        # B's group, with a telling description: it belongs to B (A's cluster never gets it), and A's view of
        # the trail, syncs of A's cluster included, must not name it.
        cn, description = f"isosecret{unique}", f"B's merger plans {unique}"
        group = admin_b.post("/api/v1/groups", json={"cn": cn, "description": description})
        assert group.status_code == 201, group.text
        made = audited(root, "group_created", group.json()["id"])
        eventually(lambda: any(r["seq"] > made["seq"] for r in root.audit(action="target_synced",
                                                                         resource_id=f"pve:{conn['id']}")),
                   60, 0.5, "a sync of A's cluster after the group was made")
        audited(root, "tenant_switched", shared["id"])
        seen = admin_a.get("/api/v1/audit/events", params={"limit": 200})
        assert seen.status_code == 200, seen.text
        assert any(r["action"] == "tenant_switched" for r in seen.json()["items"])  # A sees its own part
        assert any(r["action"] == "target_synced" for r in seen.json()["items"])
        for foreign in (b["id"], b["name"], cn, description):
            assert foreign not in seen.text, foreign
        everything = root.get("/api/v1/audit/events", params={"limit": 200, "tenant": a["id"]})
        assert everything.status_code == 200 and b["id"] in everything.text  # super admins: as recorded
        root.delete(f"/api/v1/connections/{conn['id']}")


def test_a_reset_request_is_audited_with_its_client_after_the_answer(platform, root, world):
    user, _ = world["user_b"]
    anonymous = platform.api()
    answer = anonymous.post("/api/v1/auth/password-reset", json={"email": user["email"]})
    assert answer.status_code == 202, answer.text
    record = eventually(lambda: [r for r in root.audit(action="password_reset_requested", resource_id=user["id"])
                                 if r["actor"]["ip"] == anonymous.client_ip], 20, 0.2, "reset request audited")[0]
    assert record["data"]["by_admin"] is False
