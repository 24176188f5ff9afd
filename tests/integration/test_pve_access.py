"""Access propagation to Proxmox VE end to end, without the platform: pve_plan's desired state,
read_state/plan/apply/ensure_realm through proxmoxer against the schema-checked stand-in."""
from __future__ import annotations

import dataclasses

import pytest

from services.proxmox_sync import pve, pve_plan
from services.proxmox_sync.domain import Access, CustomRole, Group, Person
from services.proxmox_sync.pve import Endpoint, PveFailure, RealmSpec
from services.rbac import domain as rbac
from tests.pve_standin import PveStandin
from tests.pve_standin.access import realm_password

REALM, CONNECTION = "gatehouse", "conn-1"
TOKEN_ID, TOKEN_SECRET = "root@pam!gatehouse", "sync-token-secret"
SPEC = RealmSpec(realm=REALM, server="ldap.gatehouse.example", port=636, mode="ldaps",
                 base_dn="ou=people,dc=gatehouse,dc=example")
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture
def standin():
    with PveStandin() as server:
        server.add_token(TOKEN_ID, TOKEN_SECRET)
        yield server


@pytest.fixture
def session(standin):
    endpoint = Endpoint(url=standin.url, verify_tls=True, ca_pem=None, fingerprint=standin.fingerprint,
                        auth_method="token", login=TOKEN_ID, secret=TOKEN_SECRET)
    with pve.session(endpoint) as api:
        yield api


def person(username, status="active") -> Person:
    return Person(user_id=f"id-{username}", username=username, first_name=username.title(), last_name="Doe",
                  email=f"{username}@example.org", uid_number=10000, status=status)


def access(username, role, super_admin=False, **scope) -> Access:
    return Access(user_id=f"id-{username}", role=role, permissions=rbac.permissions_of(role),
                  scope=rbac.normalize_scope(scope), super_admin=super_admin)


def tenant(members=("alice", "bob", "carol", "dan")):
    """A tenant's inputs: alice operator on VM 100, bob viewer, carol suspended admin, dan super admin,
    erin helpdesk (custom role) on a storage; group ops = alice, bob."""
    people = {"alice": person("alice"), "bob": person("bob"), "carol": person("carol", "suspended"),
              "dan": person("dan"), "erin": person("erin")}
    rights = {"alice": access("alice", "operator", vms=["100"]), "bob": access("bob", "viewer"),
              "carol": access("carol", "admin"), "dan": access("dan", "viewer", super_admin=True),
              "erin": access("erin", "helpdesk", storages=["local-lvm"])}
    chosen = [people[name] for name in members]
    return dict(members=chosen, access={rights[name].user_id: rights[name] for name in members},
                groups=[Group("g1", "ops", 6000, "Operations", False, frozenset({"id-alice", "id-bob"}))],
                custom_roles=[CustomRole("helpdesk", frozenset({"vm.view", "vm.console", "storage.view"}))])


def sync(api, inputs) -> tuple[list, int]:
    """One pass as the engine makes it: desired vs the managed part of what is there, applied."""
    desired = pve_plan.desired_state(REALM, CONNECTION, **inputs)
    changes = pve_plan.plan(desired, pve_plan.managed(pve.read_state(api, REALM), REALM))
    return changes, pve.apply(api, changes)


def pending(api, inputs) -> list:
    desired = pve_plan.desired_state(REALM, CONNECTION, **inputs)
    return pve_plan.plan(desired, pve_plan.managed(pve.read_state(api, REALM), REALM))


def acl_of(api, ugid) -> set[tuple[str, str]]:
    return {(entry["path"], entry["roleid"]) for entry in api.access.acl.get() if entry["ugid"] == ugid}


def test_the_realm_is_created_then_unchanged_then_updated(session):
    assert pve.ensure_realm(session, SPEC) == "created"
    config = session.access.domains(REALM).get()
    assert (config["type"], config["server1"], config["port"], config["mode"], config["user_attr"]) == \
        ("ldap", SPEC.server, 636, "ldaps", "uid")
    assert "password" not in config
    assert pve.ensure_realm(session, SPEC) == "unchanged"
    assert pve.ensure_realm(session, dataclasses.replace(SPEC, port=389, mode="ldap+starttls")) == "updated"
    assert session.access.domains(REALM).get()["mode"] == "ldap+starttls"
    assert pve.ensure_realm(session, dataclasses.replace(SPEC, port=389, mode="ldap+starttls")) == "unchanged"


def test_the_realm_binds_as_the_reader_and_gets_its_password_only_when_told(standin, session):
    reader = dataclasses.replace(SPEC, bind_dn="cn=reader,dc=gatehouse,dc=example", bind_password="reader-pw")
    assert pve.ensure_realm(session, reader, send_password=True) == "created"
    config = session.access.domains(REALM).get()
    assert config["bind_dn"] == reader.bind_dn and "password" not in config  # write-only, as on Proxmox VE
    assert realm_password(standin, REALM) == "reader-pw"
    assert pve.ensure_realm(session, reader, send_password=False) == "unchanged"
    # a new password cannot be seen in the realm: the caller says it changed
    assert pve.ensure_realm(session, dataclasses.replace(reader, bind_password="new-pw"), send_password=True) == \
        "updated"
    assert realm_password(standin, REALM) == "new-pw"
    other = dataclasses.replace(reader, bind_dn="cn=other,dc=gatehouse,dc=example", bind_password="other-pw")
    assert pve.ensure_realm(session, other, send_password=False) == "updated"  # a new account: its password too
    assert session.access.domains(REALM).get()["bind_dn"] == other.bind_dn
    assert realm_password(standin, REALM) == "other-pw"
    assert pve.ensure_realm(session, SPEC, send_password=False) == "updated"  # no account: anonymous searches
    assert "bind_dn" not in session.access.domains(REALM).get() and realm_password(standin, REALM) is None
    assert pve.ensure_realm(session, SPEC) == "unchanged"


def test_a_realm_of_another_type_with_that_name_is_a_conflict(session):
    with pytest.raises(PveFailure) as raised:
        pve.ensure_realm(session, dataclasses.replace(SPEC, realm="pve"))
    assert raised.value.code == "realm_conflict"
    assert session.access.domains("pve").get()["type"] == "pve"


def test_without_the_realm_reading_the_state_says_so(session):
    with pytest.raises(PveFailure) as raised:
        pve.read_state(session, REALM)
    assert raised.value.code == "realm_missing" and REALM in raised.value.message


def test_a_first_sync_creates_everything_and_a_second_finds_nothing_to_do(session):
    pve.ensure_realm(session, SPEC)
    inputs = tenant(("alice", "bob", "carol", "dan", "erin"))
    changes, applied = sync(session, inputs)
    assert applied == len(changes) > 0
    users = {user["userid"]: user for user in session.access.users.get(full=1)}
    assert users["alice@gatehouse"]["comment"] == pve_plan.marker(REALM)
    assert users["alice@gatehouse"]["email"] == "alice@example.org" and users["alice@gatehouse"]["enable"] == 1
    assert users["carol@gatehouse"]["enable"] == 0
    assert session.access.groups("ops").get()["members"] == ["alice@gatehouse", "bob@gatehouse"]
    assert session.access.roles("GH_helpdesk").get() == {"Datastore.Audit": 1, "VM.Audit": 1, "VM.Console": 1}
    assert acl_of(session, "alice@gatehouse") == {("/vms/100", "PVEVMAdmin"), ("/vms/100", "PVEDatastoreAdmin"),
                                                  ("/vms/100", "PVEAuditor")}
    assert acl_of(session, "bob@gatehouse") == {("/", "PVEAuditor")}
    assert acl_of(session, "carol@gatehouse") == set()  # suspended
    assert acl_of(session, "dan@gatehouse") == {("/", "Administrator")}
    assert acl_of(session, "erin@gatehouse") == {("/storage/local-lvm", "GH_helpdesk")}
    assert pending(session, inputs) == []


def test_drift_is_repaired_and_what_gatehouse_does_not_manage_is_left_alone(session, standin):
    pve.ensure_realm(session, SPEC)
    session.access.domains.post(realm="corp", type="ldap", server1="ad.corp", base_dn="dc=corp", user_attr="uid")
    session.access.groups.post(groupid="handmade", comment="made by hand")
    session.access.users.post(userid="hand@gatehouse", comment="made by hand")  # our realm, no marker
    session.access.users.post(userid="alice@corp", comment=pve_plan.marker(REALM))  # marker, another realm
    session.access.acl.put(path="/", roles="PVEAuditor", users="hand@gatehouse,alice@corp", groups="handmade")
    inputs = tenant(("alice", "bob", "dan", "erin"))
    sync(session, inputs)
    untouched = {user["userid"]: user for user in session.access.users.get(full=1)
                 if user["userid"] in ("root@pam", "hand@gatehouse", "alice@corp")}
    session.access.users("alice@gatehouse").put(groups="handmade", append=1)  # a hand-made membership stays

    # behind our back: a managed user edited, an ACL entry removed, a managed-looking user added,
    # a GH_ role changed, a managed group's comment changed
    session.access.users("bob@gatehouse").put(email="evil@example.org", enable=0, firstname="Robert")
    session.access.acl.put(path="/", roles="Administrator", users="dan@gatehouse", delete=1)
    session.access.users.post(userid="mallory@gatehouse", comment=pve_plan.marker(REALM), groups="ops")
    session.access.acl.put(path="/", roles="Administrator", users="mallory@gatehouse")
    session.access.roles("GH_helpdesk").put(privs="Sys.Modify", append=1)
    session.access.groups("ops").put(comment=f"{pve_plan.marker(REALM)}: renamed")

    changes = pending(session, inputs)
    assert {(change.op, change.kind, change.key) for change in changes} == {
        ("update", "user", "bob@gatehouse"), ("create", "acl", "/ Administrator user:dan@gatehouse"),
        ("delete", "acl", "/ Administrator user:mallory@gatehouse"), ("delete", "user", "mallory@gatehouse"),
        ("update", "role", "GH_helpdesk"), ("update", "group", "ops")}
    assert pve.apply(session, changes) == len(changes)
    assert pending(session, inputs) == []

    bob = session.access.users("bob@gatehouse").get()
    assert (bob["email"], bob["enable"], bob["firstname"]) == ("bob@example.org", 1, "Bob")
    assert acl_of(session, "dan@gatehouse") == {("/", "Administrator")}
    assert "mallory@gatehouse" not in {user["userid"] for user in session.access.users.get()}
    assert "Sys.Modify" not in session.access.roles("GH_helpdesk").get()
    assert session.access.users("alice@gatehouse").get()["groups"] == ["handmade", "ops"]
    after = {user["userid"]: user for user in session.access.users.get(full=1)}
    assert {userid: after[userid] for userid in untouched} == untouched
    assert acl_of(session, "hand@gatehouse") == {("/", "PVEAuditor")} == acl_of(session, "alice@corp")
    assert acl_of(session, "handmade") == {("/", "PVEAuditor")}
    assert session.access.domains("corp").get()["server1"] == "ad.corp"
    writes = [call for call in standin.calls if call["method"] != "GET"]
    assert not any("hand@gatehouse" in str(call) or "alice@corp" in str(call) or "root@pam" in call["path"]
                   for call in writes[-len(changes):])


def test_removed_and_suspended_members_lose_their_rights(session):
    pve.ensure_realm(session, SPEC)
    sync(session, tenant(("alice", "bob", "dan")))
    inputs = tenant(("alice", "dan"))
    inputs["members"][0] = dataclasses.replace(inputs["members"][0], status="suspended")
    changes, applied = sync(session, inputs)
    assert ("delete", "user", "bob@gatehouse") in {(c.op, c.kind, c.key) for c in changes}
    assert "bob@gatehouse" not in {user["userid"] for user in session.access.users.get()}
    assert session.access.users("alice@gatehouse").get()["enable"] == 0 and acl_of(session, "alice@gatehouse") == set()
    assert session.access.groups("ops").get()["members"] == ["alice@gatehouse"]
    assert pending(session, inputs) == []


def test_an_id_taken_by_a_hand_made_object_is_reported_and_left_alone(session):
    pve.ensure_realm(session, SPEC)
    session.access.users.post(userid="bob@gatehouse", firstname="Hand", comment="by hand")
    session.access.groups.post(groupid="ops", comment="by hand")
    changes, applied = sync(session, tenant(("alice", "bob")))
    conflicts = {(change.kind, change.key) for change in changes if change.op == "conflict"}
    assert conflicts == {("user", "bob@gatehouse"), ("group", "ops")}
    assert applied == len(changes) - 2
    assert session.access.users("bob@gatehouse").get()["firstname"] == "Hand"
    assert acl_of(session, "bob@gatehouse") == set()
    assert session.access.groups("ops").get() == {"comment": "by hand", "members": []}


def test_a_change_proxmox_refuses_is_reported_and_the_others_are_made(session):
    pve.ensure_realm(session, SPEC)
    inputs = tenant(("alice", "bob"))
    desired = pve_plan.desired_state(REALM, CONNECTION, **inputs)
    changes = pve_plan.plan(desired, pve_plan.managed(pve.read_state(session, REALM), REALM))
    bad = pve_plan.PveChange("create", "role", "GH_broken", {"privs": frozenset({"VM.Teleport"})})
    with pytest.raises(pve.ChangesFailed) as raised:
        pve.apply(session, [*changes, bad])
    failure = raised.value
    assert failure.code == "proxmox_error" and failure.applied == len(changes)
    assert failure.failures[0]["change"]["key"] == "GH_broken"
    assert "invalid privilege 'VM.Teleport'" in failure.message
    assert TOKEN_SECRET not in str(failure.as_dict())
    assert pending(session, inputs) == []
