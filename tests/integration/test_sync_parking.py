"""Issue 20: one user the directory refuses never holds anyone else's access (a real slapd,
binds checked with ldapwhoami, everything driven through the gateway).

The poison is a real refusal by slapd for that one user: an entry Gatehouse does not manage sits
on the user's DN with a child under it, so slapd refuses to delete it (notAllowedOnNonLeaf) and
the user's entry cannot be added there. The API accepts the user as it is.
"""
from __future__ import annotations

import pytest

from tests.harness import PASSWORD, eventually
from tests.integration.test_rbac import audited
from tests.integration.test_sync import (WAIT, binds, directory_settings, entry, ldap_conn, patch_user, person_dn,
                                         status)
from tests.integration.test_tenancy import make_user


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def directory(platform, admin, slapd):
    """The platform writes to the test slapd (as in test_sync)."""
    answer = admin.put("/api/v1/settings/ldap", json=directory_settings(slapd))
    assert answer.status_code == 200, answer.text
    return slapd


def block(slapd, username: str) -> str:
    """A foreign entry on the DN `username` would get, with a child: slapd will not delete it."""
    dn = person_dn(slapd, username)
    with ldap_conn(slapd) as conn:
        assert conn.add(dn, attributes={"objectClass": ["account"], "uid": [username]}), conn.result
        assert conn.add(f"cn=hold,{dn}", attributes={"objectClass": ["organizationalRole"], "cn": ["hold"]}), conn.result
    return dn


def unblock(slapd, dn: str) -> None:
    with ldap_conn(slapd) as conn:
        for each in (f"cn=hold,{dn}", dn):
            conn.delete(each)


def parked(admin, user_id: str) -> dict | None:
    for item in status(admin)["ldap"]["parked"]:
        if item["subject"] == f"user:{user_id}":
            return item
    return None


def test_a_user_slapd_refuses_is_parked_and_another_users_suspension_is_not_held_behind_it(
        platform, admin, directory, unique):
    bob, _ = make_user(platform, admin, f"pb{unique}")
    eventually(lambda: binds(directory, bob["username"], PASSWORD), WAIT, 0.2, "B binds")

    poisoned = f"pa{unique}"
    blocker = block(directory, poisoned)
    try:
        ada, _ = make_user(platform, admin, poisoned)
        first = eventually(lambda: parked(admin, ada["id"]), WAIT, 0.2, "A parked")
        assert first["label"] == blocker
        assert first["reason"]["code"] == "ldap_refused" and first["reason"]["ldap_result"] == "notAllowedOnNonLeaf"
        assert blocker in first["reason"]["message"] and first["since"] and first["attempts"] >= 1
        ldap = status(admin)["ldap"]
        assert ldap["state"] != "failing" and ldap["failing_since"] is None and ldap["parked_count"] >= 1
        event = audited(admin, "subject_parked", "ldap", subject=f"user:{ada['id']}")
        assert event["outcome"] == "failure" and event["data"]["error"] == "ldap_refused"

        # B's suspension reaches slapd while A is still parked: nothing of B's waits behind A.
        patch_user(admin, bob["id"], status="suspended")
        eventually(lambda: not binds(directory, bob["username"], PASSWORD), WAIT, 0.1, "B's suspension in slapd")
        still = parked(admin, ada["id"])
        assert still is not None and still["since"] == first["since"], "A was unparked before B's suspension landed"
        assert entry(directory, person_dn(directory, poisoned))["objectclass"] == ["account"]  # A not written yet
        assert not [e for e in admin.audit(action="subject_unparked", resource_id="ldap")
                    if e["data"].get("subject") == f"user:{ada['id']}"]
        assert status(admin)["ldap"]["state"] != "failing"

        # A's data fixed (a new username, off the blocked DN): A is tried again at once, reaches
        # slapd and is unparked.
        fixed = f"pa{unique}ok"
        patch_user(admin, ada["id"], username=fixed)
        eventually(lambda: binds(directory, fixed, PASSWORD), WAIT, 0.1, "A binds under the fixed name")
        eventually(lambda: parked(admin, ada["id"]) is None, WAIT, 0.2, "A unparked")
        audited(admin, "subject_unparked", "ldap", subject=f"user:{ada['id']}")
    finally:
        unblock(directory, blocker)



# --- the adapter alone against slapd: a refusal for one entry's data is that entry's ---------------


def test_slapd_refusing_one_entrys_data_is_recorded_and_the_other_changes_are_made(slapd, unique):
    from services.proxmox_sync.ldap_directory import Directory, EntryRefused
    from services.proxmox_sync.ldap_plan import LdapChange, LdapSettings
    from ops.slapd import ssha
    from tests.ldap_tools import ldapwhoami

    base = f"ou=t-{unique},{slapd.base_dn}"
    with ldap_conn(slapd) as conn:
        assert conn.add(base, attributes={"objectClass": ["organizationalUnit"], "ou": [f"t-{unique}"]})
    settings = LdapSettings(slapd.url, slapd.admin_dn, slapd.admin_password, base)

    def person(name: str, mail: str) -> LdapChange:
        return LdapChange("add", f"uid={name},ou=people,{base}", attributes={
            "objectClass": ("inetOrgPerson", "posixAccount", "shadowAccount"), "uid": (name,), "cn": (name,),
            "sn": (name,), "mail": (mail,), "uidNumber": ("20001" if name == "ok" else "20002",),
            "gidNumber": ("5000",), "homeDirectory": (f"/home/{name}",), "userPassword": (ssha("pw-" + name),)})

    with Directory(settings, timeout=5) as directory:
        directory.ensure_subtrees()
        changes = [person("bad", "b\u00fcser@ex\u00e4mple.com"), person("ok", "ok@example.com")]
        refused = []
        assert directory.apply(changes, refused=refused) == 1
        [(change, error)] = refused
        assert change.dn.startswith("uid=bad,") and error["code"] == "ldap_refused"
        assert error["ldap_result"] == "invalidAttributeSyntax" and "xämple" not in error["message"]
        assert ldapwhoami(slapd.url, f"uid=ok,ou=people,{base}", "pw-ok") == 0  # the other entry was made
        try:
            directory.apply(changes[:1])  # without `refused`, the refusal still ends the apply
        except EntryRefused as refusal:
            assert refusal.code == "ldap_error" and refusal.result == 21
        else:
            raise AssertionError("slapd took a mail it cannot hold")


def test_slapd_refusing_a_suspended_users_new_mail_still_takes_the_suspension(slapd, unique):
    """The revoke travels in a modify of its own: slapd refusing the user's new mail (the data
    modify, parked) does not keep the suspended user's password working."""
    from ops.slapd import ssha
    from services.proxmox_sync.domain import Person
    from services.proxmox_sync.ldap_directory import Directory
    from services.proxmox_sync.ldap_plan import LdapChange, LdapSettings, plan_people
    from tests.ldap_tools import ldapwhoami

    base = f"ou=s-{unique},{slapd.base_dn}"
    with ldap_conn(slapd) as conn:
        assert conn.add(base, attributes={"objectClass": ["organizationalUnit"], "ou": [f"s-{unique}"]})
    settings = LdapSettings(slapd.url, slapd.admin_dn, slapd.admin_password, base)
    dn = f"uid=sus,ou=people,{base}"
    with Directory(settings, timeout=5) as directory:
        directory.ensure_subtrees()
        directory.apply([LdapChange("add", dn, attributes={
            "objectClass": ("inetOrgPerson", "posixAccount", "shadowAccount"), "uid": ("sus",), "cn": ("Sus T",),
            "sn": ("T",), "givenName": ("Sus",), "mail": ("sus@example.com",), "uidNumber": ("20003",),
            "gidNumber": ("5000",), "homeDirectory": ("/home/sus",), "loginShell": ("/bin/bash",),
            "userPassword": (ssha("pw-sus"),)})])
        assert ldapwhoami(slapd.url, dn, "pw-sus") == 0

        suspended = Person(user_id="id-sus", username="sus", first_name="Sus", last_name="T", uid_number=20003,
                           status="suspended", email="s\u00fcs@ex\u00e4mple.com", password_hash=None)
        actual = directory.read_for_people({20003}, {"sus"}, set())
        changes = plan_people({20003: suspended}, {}, actual, settings, 5000)
        refused = []
        directory.apply(changes, refused=refused)
        [(change, error)] = refused  # the mail: that user's to park
        assert {name for _, name, _ in change.modifications} == {"mail"}
        assert error["ldap_result"] == "invalidAttributeSyntax"
        assert ldapwhoami(slapd.url, dn, "pw-sus") != 0  # the suspension is in the directory
        assert entry(slapd, dn)["shadowexpire"] in (["1"], [1], 1, "1")
