"""Propagation to the LDAP directory (a real slapd, binds checked with ldapwhoami) and to Proxmox
VE (the schema-checked stand-in, read back through proxmoxer as an administrator would), driven
through the gateway: lifecycle, passwords, renames, groups, rights, drift repair, outages."""
from __future__ import annotations

import ldap3
import pytest
from proxmoxer import ProxmoxAPI

from ops.broker import free_port
from tests.harness import PASSWORD, eventually
from tests.integration.test_rbac import audited
from tests.integration.test_tenancy import DEFAULT, make_user, member, new_tenant
from tests.ldap_tools import ldapwhoami
from ops.slapd import ssha
from tests.pve_standin import PveStandin
from tests.pve_standin.access import realm_password

TOKEN_ID, TOKEN_SECRET = "gatehouse@pve!sync", "token-secret-of-the-sync-tests"
ROOT_TOKEN, ROOT_SECRET = "root@pam!inspect", "token-secret-of-root"
REALM = "gatehouse"
WAIT = 20


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def directory(platform, admin, slapd):
    """The platform writes to the test slapd."""
    answer = admin.put("/api/v1/settings/ldap", json=directory_settings(slapd))
    assert answer.status_code == 200, answer.text
    assert answer.json()["password_set"] is True and "password" not in answer.json()
    assert answer.json()["realm_bind_dn"] == slapd.reader_dn and answer.json()["realm_bind_password_set"] is True
    assert "realm_bind_password" not in answer.json()
    return slapd


def directory_settings(slapd, **changes) -> dict:
    return {"url": slapd.url, "bind_dn": slapd.admin_dn, "password": slapd.admin_password, "base_dn": slapd.base_dn,
            "login_shell": "/bin/zsh", "realm_bind_dn": slapd.reader_dn, "realm_bind_password": slapd.reader_password,
            **changes}


def _standin() -> PveStandin:
    server = PveStandin()
    server.add_token(TOKEN_ID, TOKEN_SECRET)
    server.add_token(ROOT_TOKEN, ROOT_SECRET)
    return server


def _connect(admin, server: PveStandin, name: str) -> dict:
    created = admin.post("/api/v1/connections", json={
        "name": name, "url": server.url, "fingerprint": server.fingerprint, "realm": REALM,
        "auth": {"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET}})
    assert created.status_code == 201, created.text
    return created.json()


@pytest.fixture(scope="module")
def pve(platform, admin, directory):
    """A Proxmox VE of the default tenant, with its realm pointing at the directory."""
    with _standin() as server:
        connection = _connect(admin, server, f"sync-{free_port()}")
        realm = admin.post(f"/api/v1/connections/{connection['id']}/realm", json={})
        assert realm.status_code == 200 and realm.json()["result"] == "created", realm.text
        again = admin.post(f"/api/v1/connections/{connection['id']}/realm", json={})
        assert again.status_code == 200 and again.json()["result"] == "unchanged", again.text
        made = inspect(server).access.domains(REALM).get()
        assert made["type"] == "ldap" and made["base_dn"] == f"ou=people,{directory.base_dn}" and made["user_attr"] == "uid"
        # the directory refuses anonymous searches: the realm binds as the reader
        assert made["bind_dn"] == directory.reader_dn and realm.json()["bind_dn"] == directory.reader_dn
        assert realm_password(server, REALM) == directory.reader_password
        server.connection = connection
        yield server
        admin.delete(f"/api/v1/connections/{connection['id']}")


def inspect(server: PveStandin) -> ProxmoxAPI:
    """Proxmox as its root sees it."""
    user, _, token = ROOT_TOKEN.partition("!")
    return ProxmoxAPI("127.0.0.1", port=server.port, user=user, token_name=token, token_value=ROOT_SECRET,
                      verify_ssl=False)


def pve_user(server: PveStandin, username: str) -> dict | None:
    for user in inspect(server).access.users.get(full=1):
        if user["userid"] == f"{username}@{REALM}":
            return user
    return None


def acl_of(server: PveStandin, ugid: str) -> set[tuple[str, str]]:
    return {(entry["path"], entry["roleid"]) for entry in inspect(server).access.acl.get() if entry["ugid"] == ugid}


def ldap_conn(slapd) -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(slapd.url), slapd.admin_dn, slapd.admin_password, auto_bind=True)


def entry(slapd, dn: str) -> dict | None:
    with ldap_conn(slapd) as conn:
        if not conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["*"]):
            return None
        return {k.lower(): v for k, v in conn.entries[0].entry_attributes_as_dict.items()}


def person_dn(slapd, username: str) -> str:
    return f"uid={username},ou=people,{slapd.base_dn}"


def group_dn(slapd, cn: str) -> str:
    return f"cn={cn},ou=groups,{slapd.base_dn}"


def binds(slapd, username: str, password: str) -> bool:
    code = ldapwhoami(slapd.url, person_dn(slapd, username), password)
    assert code in (0, 49), f"ldapwhoami answered {code}"
    return code == 0


def status(admin) -> dict:
    answer = admin.get("/api/v1/sync/status")
    assert answer.status_code == 200, answer.text
    return {item["target"]: item for item in answer.json()["items"]}


def settled(admin, target: str) -> dict:
    """Waits until the target has no work waiting and is not running; its status."""
    def idle():
        item = status(admin).get(target)
        return item if item and item["pending"] == 0 and not item["running"] else None
    return eventually(idle, WAIT, 0.2, f"{target} settled")


def patch_user(admin, user_id: str, **changes) -> dict:
    answer = admin.patch(f"/api/v1/users/{user_id}", json=changes)
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- the directory ---------------------------------------------------------------------------------


def test_users_bind_in_ldap_with_their_platform_password(platform, admin, directory, unique):
    user, _ = make_user(platform, admin, f"ld{unique}")
    name = user["username"]
    eventually(lambda: binds(directory, name, PASSWORD), WAIT, 0.2, "bind with the platform password")
    assert not binds(directory, name, PASSWORD + "x")
    found = entry(directory, person_dn(directory, name))
    assert {"inetOrgPerson", "posixAccount", "shadowAccount"} <= set(found["objectclass"])
    assert found["uidnumber"] == [user["uid_number"]] and found["gidnumber"] == [5000]
    assert found["homedirectory"] == [f"/home/{name}"] and found["loginshell"] == ["/bin/zsh"]
    assert found["mail"] == [user["email"]] and found["sn"] == [user["last_name"]]
    assert name in entry(directory, group_dn(directory, "ldapusers"))["memberuid"]


def test_a_password_change_is_bindable_at_once(platform, admin, directory, unique):
    user, api = make_user(platform, admin, f"pw{unique}")
    eventually(lambda: binds(directory, user["username"], PASSWORD), WAIT, 0.2, "first bind")
    new = "another long passphrase 42"
    assert api.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": new}).status_code == 204
    eventually(lambda: binds(directory, user["username"], new), WAIT, 0.1, "new password binds")
    assert not binds(directory, user["username"], PASSWORD)


def test_only_active_users_bind_and_reactivation_restores_everything(platform, admin, directory, pve, unique):
    user, _ = make_user(platform, admin, f"su{unique}")
    name = user["username"]
    eventually(lambda: binds(directory, name, PASSWORD), WAIT, 0.2, "bind")
    eventually(lambda: (pve_user(pve, name) or {}).get("enable") == 1, WAIT, 0.2, "enabled in Proxmox")

    patch_user(admin, user["id"], status="suspended")
    eventually(lambda: not binds(directory, name, PASSWORD), WAIT, 0.1, "suspended: bind refused")
    eventually(lambda: pve_user(pve, name)["enable"] == 0, WAIT, 0.1, "suspended: disabled in Proxmox")
    kept = entry(directory, person_dn(directory, name))
    assert kept is not None and kept["uidnumber"] == [user["uid_number"]]  # the UID stays for file ownership
    assert "userpassword" not in kept
    assert name not in entry(directory, group_dn(directory, "ldapusers")).get("memberuid", [])

    patch_user(admin, user["id"], status="active")
    eventually(lambda: binds(directory, name, PASSWORD), WAIT, 0.1, "reactivated: binds again")
    eventually(lambda: pve_user(pve, name)["enable"] == 1, WAIT, 0.1, "reactivated: enabled")
    assert name in entry(directory, group_dn(directory, "ldapusers"))["memberuid"]


def test_pending_users_have_an_entry_that_cannot_bind(platform, directory, unique):
    from tests.harness import register
    registered = register(platform.api(), f"pe{unique}")
    assert registered.status_code == 201, registered.text
    name = registered.json()["username"]
    eventually(lambda: entry(directory, person_dn(directory, name)) is not None, WAIT, 0.2, "pending entry")
    assert "userpassword" not in entry(directory, person_dn(directory, name))
    assert not binds(directory, name, PASSWORD)


def test_removed_users_leave_the_directory_and_proxmox(platform, admin, directory, pve, unique):
    user, _ = make_user(platform, admin, f"rm{unique}")
    name = user["username"]
    eventually(lambda: pve_user(pve, name) is not None and binds(directory, name, PASSWORD), WAIT, 0.2, "propagated")
    assert admin.delete(f"/api/v1/users/{user['id']}").status_code == 204
    eventually(lambda: entry(directory, person_dn(directory, name)) is None, WAIT, 0.1, "entry deleted")
    eventually(lambda: pve_user(pve, name) is None, WAIT, 0.1, "Proxmox user deleted")
    assert name not in entry(directory, group_dn(directory, "ldapusers")).get("memberuid", [])


def test_a_rename_moves_the_entry_and_its_memberships(platform, admin, directory, pve, unique):
    user, _ = make_user(platform, admin, f"rn{unique}")
    old, new = user["username"], f"rn{unique}b"
    eventually(lambda: binds(directory, old, PASSWORD) and pve_user(pve, old), WAIT, 0.2, "propagated")
    patch_user(admin, user["id"], username=new)
    eventually(lambda: binds(directory, new, PASSWORD), WAIT, 0.1, "the new name binds")
    assert entry(directory, person_dn(directory, old)) is None
    assert entry(directory, person_dn(directory, new))["uidnumber"] == [user["uid_number"]]
    members = entry(directory, group_dn(directory, "ldapusers"))["memberuid"]
    assert new in members and old not in members
    eventually(lambda: pve_user(pve, new) is not None and pve_user(pve, old) is None, WAIT, 0.1, "renamed in Proxmox")


def test_groups_are_posix_groups_and_proxmox_groups(platform, admin, directory, pve, unique):
    user, _ = make_user(platform, admin, f"gr{unique}")
    cn = f"team{unique}"
    group = admin.post("/api/v1/groups", json={"cn": cn, "description": "a team"})
    assert group.status_code == 201, group.text
    added = admin.post(f"/api/v1/groups/{group.json()['id']}/members", json={"user_id": user["id"]})
    assert added.status_code in (200, 201, 204), added.text
    eventually(lambda: user["username"] in (entry(directory, group_dn(directory, cn)) or {}).get("memberuid", []),
               WAIT, 0.2, "posixGroup with the member")
    found = entry(directory, group_dn(directory, cn))
    assert found["gidnumber"] == [group.json()["gid_number"]] and "posixGroup" in found["objectclass"]
    eventually(lambda: cn in (pve_user(pve, user["username"]) or {}).get("groups", []), WAIT, 0.2,
               "member of the mirrored Proxmox group")
    assert admin.delete(f"/api/v1/groups/{group.json()['id']}").status_code == 204
    eventually(lambda: entry(directory, group_dn(directory, cn)) is None, WAIT, 0.2, "group entry deleted")


# --- rights ------------------------------------------------------------------------------------------


def test_roles_become_acl_entries_and_scopes_become_paths(platform, admin, pve, unique):
    operator, _ = make_user(platform, admin, f"op{unique}", role="operator")
    ugid = f"{operator['username']}@{REALM}"
    eventually(lambda: ("/", "PVEVMAdmin") in acl_of(pve, ugid), WAIT, 0.2, "operator's ACL on /")

    role = admin.post("/api/v1/roles", json={"name": f"starter{unique}", "permissions": ["vm.view", "vm.start"]})
    assert role.status_code == 201, role.text
    scoped, _ = make_user(platform, admin, f"sc{unique}")
    assigned = admin.put(f"/api/v1/users/{scoped['id']}/roles/{DEFAULT}", json={
        "role": f"starter{unique}", "scope": {"vms": ["100"], "nodes": ["n1"]}})
    assert assigned.status_code == 200, assigned.text
    pve_role = f"GH_starter{unique}"
    ugid = f"{scoped['username']}@{REALM}"
    eventually(lambda: acl_of(pve, ugid) == {("/vms/100", pve_role), ("/nodes/n1", pve_role)}, WAIT, 0.2,
               "scoped ACL paths")
    privileges = inspect(pve).access.roles(pve_role).get()
    assert {"VM.Audit", "VM.PowerMgmt"} <= set(privileges)

    root = f"rootadmin@{REALM}"
    eventually(lambda: ("/", "Administrator") in acl_of(pve, root), WAIT, 0.2, "super admin is Administrator")


# --- drift, status, outages ------------------------------------------------------------------------------


def test_drift_behind_our_back_is_repaired_and_foreign_objects_are_left_alone(platform, admin, directory, pve,
                                                                               unique):
    user, _ = make_user(platform, admin, f"dr{unique}")
    name = user["username"]
    eventually(lambda: binds(directory, name, PASSWORD) and pve_user(pve, name), WAIT, 0.2, "propagated")
    target = f"pve:{pve.connection['id']}"
    settled(admin, "ldap")
    settled(admin, target)
    with ldap_conn(directory) as conn:  # LDAP: a changed value, an extra entry, a lost membership
        conn.modify(person_dn(directory, name), {"mail": [(ldap3.MODIFY_REPLACE, ["evil@example.com"])],
                                                 "loginShell": [(ldap3.MODIFY_REPLACE, ["/bin/false"])]})
        conn.add(person_dn(directory, f"intruder{unique}"), ["inetOrgPerson"], {"cn": "x", "sn": "x"})
        conn.modify(group_dn(directory, "ldapusers"), {"memberUid": [(ldap3.MODIFY_DELETE, [name])]})
    api = inspect(pve)  # Proxmox: a disabled managed user, a foreign user in our realm and in pam
    api.access.users(f"{name}@{REALM}").put(enable=0)
    api.access.users.post(userid=f"handmade{unique}@{REALM}", comment="made by hand")
    api.access.users.post(userid=f"local{unique}@pve")

    assert admin.post("/api/v1/sync/run", json={"targets": ["ldap", target]}).status_code == 202
    eventually(lambda: entry(directory, person_dn(directory, name))["mail"] == [user["email"]], WAIT, 0.2,
               "mail repaired")
    assert entry(directory, person_dn(directory, name))["loginshell"] == ["/bin/zsh"]
    assert entry(directory, person_dn(directory, f"intruder{unique}")) is None
    assert name in entry(directory, group_dn(directory, "ldapusers"))["memberuid"]
    eventually(lambda: pve_user(pve, name)["enable"] == 1, WAIT, 0.2, "Proxmox user repaired")
    users = {u["userid"] for u in api.access.users.get()}
    assert {f"handmade{unique}@{REALM}", f"local{unique}@pve", "root@pam"} <= users

    # Once in sync, a reconcile writes nothing.
    before = {t: status(admin)[t]["changes_total"] for t in ("ldap", target)}
    settled(admin, "ldap")
    settled(admin, target)
    assert admin.post("/api/v1/sync/run", json={"targets": ["ldap", target]}).status_code == 202
    for name_ in ("ldap", target):
        done = eventually(lambda: (s := status(admin)[name_])["pending"] == 0 and not s["running"]
                          and s["last_run"]["mode"] == "full" and s, WAIT, 0.2, "second reconcile")
        assert done["last_run"]["changes"] == 0 and done["changes_total"] == before[name_], done


def test_status_and_run_need_their_permissions(platform, admin, pve, unique):
    items = status(admin)
    assert "ldap" in items and f"pve:{pve.connection['id']}" in items
    ldap_status = items["ldap"]
    assert ldap_status["last_run"] is not None and ldap_status["last_full_at"] is not None
    assert admin.post("/api/v1/sync/run", json={"targets": ["pve:nope"]}).status_code == 404
    queued = admin.post("/api/v1/sync/run", json={})
    assert queued.status_code == 202 and set(queued.json()["queued"]) >= {"ldap", f"pve:{pve.connection['id']}"}
    _, viewer = make_user(platform, admin, f"vw{unique}", role="viewer")
    assert viewer.get("/api/v1/sync/status").status_code == 200
    refused = viewer.post("/api/v1/sync/run", json={})
    assert refused.status_code == 403 and refused.json()["error"]["details"]["permission"] == "sync.run"
    assert admin.put("/api/v1/settings/ldap", json={"url": "http://x", "bind_dn": "nope", "base_dn": "dc=x"}
                     ).status_code == 422
    assert viewer.get("/api/v1/settings/ldap").status_code == 403
    audited(admin, "sync_requested", "run")


def test_the_realm_password_is_checked_sent_once_changed_and_never_shown(admin, directory, pve):
    connection = pve.connection["id"]
    wrong = admin.put("/api/v1/settings/ldap", json=directory_settings(directory, realm_bind_password="wrong"))
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "ldap_realm_bind_refused", wrong.text
    assert "wrong" not in wrong.text
    assert admin.post(f"/api/v1/connections/{connection}/realm", json={}).json()["result"] == "unchanged"

    new_password = "a-new-reader-password"
    set_reader_password(directory, new_password)
    try:
        changed = admin.put("/api/v1/settings/ldap", json=directory_settings(directory, realm_bind_password=new_password))
        assert changed.status_code == 200, changed.text
        shown = admin.get("/api/v1/settings/ldap")
        for answer in (changed, shown):
            assert answer.json()["realm_bind_password_set"] is True and new_password not in answer.text
        # Proxmox VE cannot show the realm's password: Gatehouse knows it sent another one
        assert admin.post(f"/api/v1/connections/{connection}/realm", json={}).json()["result"] == "updated"
        assert realm_password(pve, REALM) == new_password
        assert admin.post(f"/api/v1/connections/{connection}/realm", json={}).json()["result"] == "unchanged"
        record = audited(admin, "directory_settings_changed", "ldap")
        assert "realm_bind_password" in record["data"]["fields"] and new_password not in str(record)
    finally:
        set_reader_password(directory, directory.reader_password)
        assert admin.put("/api/v1/settings/ldap", json=directory_settings(directory)).status_code == 200
        assert admin.post(f"/api/v1/connections/{connection}/realm", json={}).json()["result"] == "updated"
    assert realm_password(pve, REALM) == directory.reader_password


def set_reader_password(slapd, password: str) -> None:
    with ldap_conn(slapd) as conn:
        assert conn.modify(slapd.reader_dn, {"userPassword": [(ldap3.MODIFY_REPLACE, [ssha(password)])]}), conn.result


def test_a_directory_outage_loses_nothing(platform, admin, directory, unique):
    user, _ = make_user(platform, admin, f"ou{unique}")
    eventually(lambda: binds(directory, user["username"], PASSWORD), WAIT, 0.2, "bind before the outage")
    settled(admin, "ldap")
    directory.stop()
    try:
        patch_user(admin, user["id"], status="suspended")
        newcomer, _ = make_user(platform, admin, f"on{unique}")
        failing = eventually(lambda: (s := status(admin)["ldap"])["state"] == "failing" and s, WAIT, 0.2, "failing")
        assert failing["pending"] >= 1 and failing["last_run"]["error"]["code"] == "unreachable"
    finally:
        directory.start()
    eventually(lambda: binds(directory, newcomer["username"], PASSWORD), 90, 0.5, "the newcomer binds")
    eventually(lambda: not binds(directory, user["username"], PASSWORD), WAIT, 0.2, "the suspension applied")
    recovered = settled(admin, "ldap")
    assert recovered["state"] == "idle" and recovered["failing_since"] is None
    audited(admin, "target_failed", "ldap")
    audited(admin, "target_recovered", "ldap")


# --- tenants ---------------------------------------------------------------------------------------------


def test_a_connection_gets_only_its_tenants_members(platform, admin, pve, unique):
    tenant = new_tenant(admin, f"syncco{unique}")
    with _standin() as other:
        connection = _connect(admin, other, f"other-{unique}")
        moved = admin.post(f"/api/v1/connections/{connection['id']}/reassign", json={"tenant_id": tenant["id"]})
        assert moved.status_code == 200, moved.text
        realm = admin.post(f"/api/v1/connections/{connection['id']}/realm", json={})
        assert realm.status_code == 200 and realm.json()["result"] == "created", realm.text
        insider, _ = make_user(platform, admin, f"in{unique}")
        assert member(admin, tenant["id"], insider["id"], "viewer").status_code in (200, 201)
        outsider, _ = make_user(platform, admin, f"out{unique}")
        eventually(lambda: pve_user(other, insider["username"]) is not None, WAIT, 0.2, "member propagated")
        assert pve_user(other, outsider["username"]) is None
        assert ("/", "PVEAuditor") in acl_of(other, f"{insider['username']}@{REALM}")
        removed = admin.delete(f"/api/v1/tenants/{tenant['id']}/users/{insider['id']}")
        assert removed.status_code == 204, removed.text
        eventually(lambda: pve_user(other, insider["username"]) is None, WAIT, 0.2, "gone with the membership")
        admin.delete(f"/api/v1/connections/{connection['id']}")


def pve_groups(server: PveStandin) -> dict[str, dict]:
    return {group["groupid"]: group for group in inspect(server).access.groups.get()}


def switch_to(api, tenant_id: str) -> None:
    answer = api.post("/api/v1/me/tenant", json={"tenant_id": tenant_id})
    assert answer.status_code == 200, answer.text


def test_a_connection_mirrors_only_its_tenants_groups_and_the_directory_keeps_every_one(
        platform, admin, directory, pve, unique):
    """Issue 17, reproduction 3: every tenant's groups were mirrored into every tenant's Proxmox VE."""
    tenant = new_tenant(admin, f"syncgr{unique}")
    with _standin() as other:
        connection = _connect(admin, other, f"groups-{unique}")
        assert admin.post(f"/api/v1/connections/{connection['id']}/reassign",
                          json={"tenant_id": tenant["id"]}).status_code == 200
        realm = admin.post(f"/api/v1/connections/{connection['id']}/realm", json={})
        assert realm.status_code == 200, realm.text
        insider, _ = make_user(platform, admin, f"gin{unique}")
        assert member(admin, tenant["id"], insider["id"], "viewer").status_code in (200, 201)
        outsider, _ = make_user(platform, admin, f"gout{unique}")  # default's only
        theirs_cn, ours_cn = f"tgr{unique}", f"dgr{unique}"
        switch_to(admin, tenant["id"])
        try:
            theirs = admin.post("/api/v1/groups", json={"cn": theirs_cn, "description": "the tenant's team"})
            assert theirs.status_code == 201 and theirs.json()["tenant_id"] == tenant["id"], theirs.text
            added = admin.post(f"/api/v1/groups/{theirs.json()['id']}/members", json={"user_id": insider["id"]})
            assert added.status_code == 201, added.text
        finally:
            switch_to(admin, DEFAULT)
        ours = admin.post("/api/v1/groups", json={"cn": ours_cn, "description": "default's team"})
        assert ours.status_code == 201 and ours.json()["tenant_id"] == DEFAULT, ours.text
        assert admin.post(f"/api/v1/groups/{ours.json()['id']}/members",
                          json={"user_id": outsider["id"]}).status_code == 201

        eventually(lambda: theirs_cn in (pve_user(other, insider["username"]) or {}).get("groups", []), WAIT, 0.2,
                   "the tenant's group mirrored to its connection")
        eventually(lambda: ours_cn in (pve_user(pve, outsider["username"]) or {}).get("groups", []), WAIT, 0.2,
                   "default's group mirrored to default's connection")
        assert ours_cn not in pve_groups(other) and theirs_cn not in pve_groups(pve)
        assert "ldapusers" in pve_groups(other)  # platform-wide: mirrored, with the tenant's members only
        assert "ldapusers" in pve_user(other, insider["username"])["groups"]
        assert pve_user(other, outsider["username"]) is None
        # the directory holds every tenant's groups
        for cn, username in ((theirs_cn, insider["username"]), (ours_cn, outsider["username"])):
            eventually(lambda: username in (entry(directory, group_dn(directory, cn)) or {}).get("memberuid", []),
                       WAIT, 0.2, f"posixGroup {cn}")

        # a member leaving the tenant leaves its groups (LDAP and Proxmox VE)
        removed = admin.delete(f"/api/v1/tenants/{tenant['id']}/users/{insider['id']}")
        assert removed.status_code == 204, removed.text
        eventually(lambda: insider["username"] not in (entry(directory, group_dn(directory, theirs_cn))
                                                        or {}).get("memberuid", []), WAIT, 0.2, "left the group")
        admin.delete(f"/api/v1/groups/{ours.json()['id']}")
        admin.delete(f"/api/v1/connections/{connection['id']}")


def test_a_proxmox_outage_loses_nothing(platform, admin, directory, unique):
    server = PveStandin(port=free_port())  # the same port after a restart (its certificate changes: no TLS pin)
    server.add_token(TOKEN_ID, TOKEN_SECRET)
    server.add_token(ROOT_TOKEN, ROOT_SECRET)
    server.start()
    created = admin.post("/api/v1/connections", json={
        "name": f"outage-{unique}", "url": server.url, "verify_tls": False, "realm": REALM,
        "auth": {"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET}})
    assert created.status_code == 201, created.text
    connection, target = created.json(), f"pve:{created.json()['id']}"
    try:
        assert admin.post(f"/api/v1/connections/{connection['id']}/realm", json={}).json()["ok"]
        user, _ = make_user(platform, admin, f"po{unique}")
        eventually(lambda: (pve_user(server, user["username"]) or {}).get("enable") == 1, WAIT, 0.2, "propagated")
        server.stop()
        patch_user(admin, user["id"], status="suspended")
        failing = eventually(lambda: (s := status(admin)[target])["state"] == "failing" and s, WAIT, 0.2, "failing")
        assert failing["pending"] >= 1 and failing["last_run"]["error"]["code"] == "unreachable"
        server.start()
        eventually(lambda: pve_user(server, user["username"])["enable"] == 0, 90, 0.5, "the suspension reached Proxmox")
        assert settled(admin, target)["state"] == "idle"
    finally:
        server.stop()
        admin.delete(f"/api/v1/connections/{connection['id']}")
