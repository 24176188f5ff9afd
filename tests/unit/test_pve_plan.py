"""pve_plan: the mapping of Gatehouse's members, groups, roles and access to Proxmox VE, and the plan."""
from __future__ import annotations

import dataclasses

import pytest

from services.proxmox_sync.domain import Access, CustomRole, Group, Person
from services.proxmox_sync.pve_plan import (
    BUILTIN_ROLES, MARKER, PRIVILEGES, AclEntry, PveChange, PveGroup, PveState, PveUser, acl_paths, desired_state,
    managed, marker, plan, privileges_of, role_id)
from services.rbac import domain as rbac
from tests.pve_standin import _default_schema
from tests.pve_standin.access import builtin_roles, valid_privileges

REALM, CONNECTION = "gatehouse", "conn-1"
# Privileges of Proxmox VE 8 that later versions dropped or earlier ones lack are not used
PVE9_ONLY = {"VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite",
             "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.Unrestricted", "VM.Replicate"}


def person(username, status="active", **changes) -> Person:
    base = Person(user_id=f"id-{username}", username=username, first_name=username.title(), last_name="Doe",
                  email=f"{username}@example.org", uid_number=10000, status=status)
    return dataclasses.replace(base, **changes)


def access(username, role="viewer", super_admin=False, **scope) -> Access:
    return Access(user_id=f"id-{username}", role=role, permissions=rbac.permissions_of(role),
                  scope=rbac.normalize_scope(scope), super_admin=super_admin)


def desired(members, accesses=(), groups=(), roles=()) -> PveState:
    return desired_state(REALM, CONNECTION, list(members), {a.user_id: a for a in accesses}, list(groups), list(roles))


def user_acls(state: PveState, userid: str) -> set[tuple[str, str]]:
    return {(entry.path, entry.roleid) for entry in state.acls if entry.ugid == userid}


def ops(changes) -> list[tuple[str, str, str]]:
    return [(change.op, change.kind, change.key) for change in changes]


# --- the tables ------------------------------------------------------------------------------------


def test_every_permission_is_mapped_to_real_proxmox_ve_8_privileges_or_is_platform_only():
    assert PRIVILEGES.keys() == rbac.PERMISSIONS.keys()
    real = valid_privileges(_default_schema()) - PVE9_ONLY
    for permission, privileges in PRIVILEGES.items():
        assert set(privileges) <= real, permission
    assert PRIVILEGES["vm.start"] == PRIVILEGES["vm.stop"] == PRIVILEGES["vm.restart"] == ("VM.PowerMgmt",)
    assert PRIVILEGES["vm.console"] == ("VM.Console",) and PRIVILEGES["vm.view"] == ("VM.Audit",)
    assert PRIVILEGES["storage.view"] == ("Datastore.Audit",)
    platform_only = {permission for permission, privileges in PRIVILEGES.items() if not privileges}
    assert platform_only == {p for p in rbac.PERMISSIONS if p.split(".")[0] in
                             ("connection", "tenant", "sync", "admin")}


def test_built_in_roles_map_to_proxmox_roles_that_exist():
    existing = builtin_roles(valid_privileges(_default_schema()))
    assert BUILTIN_ROLES.keys() == rbac.BUILTIN_ROLES.keys()
    assert all(roleid in existing for roles in BUILTIN_ROLES.values() for roleid in roles)
    assert BUILTIN_ROLES == {"super_admin": ("Administrator",), "admin": ("PVEAdmin",),
                             "operator": ("PVEVMAdmin", "PVEDatastoreAdmin", "PVEAuditor"), "viewer": ("PVEAuditor",)}


def test_role_ids_are_prefixed_and_sanitized():
    assert role_id("vm-operators") == "GH_vm-operators"
    assert role_id("db.admins_2") == "GH_db.admins_2"
    assert role_id("odd name/ü") == "GH_odd_name__"


def test_custom_roles_become_gh_roles_with_derived_privileges():
    role = CustomRole("helpdesk", frozenset({"vm.view", "vm.start", "vm.console", "storage.view", "admin.audit"}))
    state = desired([], roles=[role])
    assert state.roles == {"GH_helpdesk": frozenset({"VM.Audit", "VM.PowerMgmt", "VM.Console", "Datastore.Audit"})}
    assert privileges_of({"admin.users", "sync.run"}) == frozenset()


# --- users and groups ---------------------------------------------------------------------------------


def test_members_become_marked_users_of_the_realm():
    state = desired([person("alice", email=None), person("bob", first_name="")])
    assert state.users["alice@gatehouse"] == PveUser("alice@gatehouse", "Alice", "Doe", "", True, frozenset(),
                                                     marker(REALM))
    assert state.users["bob@gatehouse"].firstname == ""
    assert marker(REALM).startswith(MARKER) and REALM in marker(REALM)


@pytest.mark.parametrize("status", ["suspended", "pending"])
def test_a_member_who_is_not_active_is_disabled_and_gets_no_acl(status):
    state = desired([person("carol", status=status)], [access("carol", "admin")])
    assert state.users["carol@gatehouse"].enable is False
    assert user_acls(state, "carol@gatehouse") == set()


def test_groups_are_mirrored_with_their_members_among_the_tenants_members():
    ops_group = Group("g1", "ops", 6000, "Operations\nteam", False, frozenset({"id-alice", "id-stranger"}))
    state = desired([person("alice"), person("bob")], groups=[ops_group])
    assert state.groups == {"ops": PveGroup("ops", f"{marker(REALM)}: Operations team")}
    assert state.users["alice@gatehouse"].groups == {"ops"}
    assert state.users["bob@gatehouse"].groups == frozenset()
    assert not any("stranger" in userid for userid in state.users)


def test_a_tenants_proxmox_mirrors_its_own_and_the_platform_wide_groups_never_another_tenants():
    members = [person("alice"), person("bob")]
    groups = [Group("g1", "t1-ops", 6000, "T1 ops", False, frozenset({"id-alice"}), tenant_id="t1"),
              Group("g2", "t2-secret", 6001, "T2 secret plans", False, frozenset({"id-alice", "id-bob"}),
                    tenant_id="t2"),
              Group("g3", "ldapusers", 5000, "Every user", False, frozenset({"id-alice", "id-bob", "id-eve"}))]
    state = desired_state(REALM, CONNECTION, members, {}, groups, [], tenant_id="t1")
    assert set(state.groups) == {"t1-ops", "ldapusers"}
    assert state.users["alice@gatehouse"].groups == {"t1-ops", "ldapusers"}
    assert state.users["bob@gatehouse"].groups == {"ldapusers"}  # t2-secret's membership is not mirrored
    assert not any("eve" in userid for userid in state.users)  # platform-wide: the tenant's members only
    assert not any("secret" in group.comment for group in state.groups.values())


def test_another_tenants_group_already_in_proxmox_is_deleted_there():
    """Before groups belonged to a tenant every group was mirrored everywhere: the next run removes them."""
    theirs = Group("g2", "t2-secret", 6001, "T2", False, frozenset(), tenant_id="t2")
    everywhere = desired([person("alice")], groups=[theirs])  # as mirrored before
    wanted = desired_state(REALM, CONNECTION, [person("alice")], {}, [theirs], [], tenant_id="t1")
    assert ("delete", "group", "t2-secret") in ops(plan(wanted, everywhere))


# --- rights -------------------------------------------------------------------------------------------


def test_a_super_admin_is_administrator_on_root_whatever_the_scope():
    state = desired([person("root1")], [access("root1", "viewer", super_admin=True, nodes=["pve1"],
                                                connections=["elsewhere"])])
    assert state.acls == {AclEntry("/", "Administrator", "root1@gatehouse", "user", True)}


@pytest.mark.parametrize("role, expected", [
    ("admin", {"PVEAdmin"}), ("operator", {"PVEVMAdmin", "PVEDatastoreAdmin", "PVEAuditor"}),
    ("viewer", {"PVEAuditor"}), ("super_admin", {"Administrator"}),
])
def test_built_in_roles_are_granted_on_root_without_a_narrowing_scope(role, expected):
    state = desired([person("dave")], [access("dave", role)])
    assert user_acls(state, "dave@gatehouse") == {("/", roleid) for roleid in expected}
    assert all(entry.propagate and entry.type == "user" for entry in state.acls)


def test_scopes_become_acl_paths():
    assert acl_paths(rbac.normalize_scope({})) == ["/"]
    assert acl_paths(rbac.normalize_scope({"connections": ["conn-1"]})) == ["/"]
    scope = rbac.normalize_scope({"nodes": ["pve1"], "storages": ["local-lvm"], "vms": ["100", "101"]})
    assert acl_paths(scope) == ["/nodes/pve1", "/storage/local-lvm", "/vms/100", "/vms/101"]
    state = desired([person("erin")], [access("erin", "viewer", vms=["100"])])
    assert user_acls(state, "erin@gatehouse") == {("/vms/100", "PVEAuditor")}


def test_a_connection_scope_without_this_connection_leaves_the_user_without_acl():
    state = desired([person("fay"), person("gus")], [access("fay", "admin", connections=["conn-2"]),
                                                     access("gus", "admin", connections=["conn-1", "conn-2"])])
    assert "fay@gatehouse" in state.users and user_acls(state, "fay@gatehouse") == set()
    assert user_acls(state, "gus@gatehouse") == {("/", "PVEAdmin")}


def test_a_custom_role_is_granted_as_its_gh_role_unless_it_gives_nothing_on_proxmox():
    roles = [CustomRole("helpdesk", frozenset({"vm.view"})), CustomRole("auditors", frozenset({"admin.audit"}))]
    state = desired([person("hal"), person("ida"), person("jo")],
                    [access("hal", "helpdesk", storages=["nfs1"]), access("ida", "auditors"),
                     access("jo", "no-such-role")], roles=roles)
    assert user_acls(state, "hal@gatehouse") == {("/storage/nfs1", "GH_helpdesk")}
    assert state.roles["GH_auditors"] == frozenset()
    assert user_acls(state, "ida@gatehouse") == set() and user_acls(state, "jo@gatehouse") == set()


def test_a_member_without_access_is_a_user_without_acl():
    state = desired([person("kim")], [])
    assert "kim@gatehouse" in state.users and state.acls == frozenset()


# --- managed ------------------------------------------------------------------------------------------


def pve_user(userid, comment="", groups=()):
    return PveUser(userid, "", "", "", True, frozenset(groups), comment)


def full_state(desired_state_: PveState, users=(), groups=(), roles=None, acls=()) -> PveState:
    """What a Proxmox VE holds: a synced state plus hand-made objects and built-in roles."""
    return PveState(users={**desired_state_.users, **{user.userid: user for user in users}},
                    groups={**desired_state_.groups, **{group.groupid: group for group in groups}},
                    roles={**desired_state_.roles, **(roles or {"PVEAuditor": frozenset({"VM.Audit"})})},
                    acls=desired_state_.acls | frozenset(acls))


def test_managed_keeps_only_what_gatehouse_owns():
    synced = desired([person("alice")], [access("alice", "viewer")],
                     [Group("g1", "ops", 6000, "Ops", False, frozenset({"id-alice"}))],
                     [CustomRole("helpdesk", frozenset({"vm.view"}))])
    root = pve_user("root@pam")
    handmade = pve_user("bob@gatehouse", comment="made by hand")
    other_realm = pve_user("carl@otherrealm", comment=marker(REALM))  # our marker, not our realm
    other_sync = PveGroup("devs", f"{marker('realm2')}: Devs")
    hand_acls = [AclEntry("/", "Administrator", "root@pam", "user"), AclEntry("/", "PVEAuditor", "devs", "group")]
    actual = managed(full_state(synced, [root, handmade, other_realm], [PveGroup("admins", "hand"), other_sync],
                                acls=hand_acls), REALM)
    assert actual.users == synced.users and actual.groups == synced.groups
    assert actual.roles == synced.roles and actual.acls == synced.acls
    assert actual.foreign == {("user", "root@pam"), ("user", "bob@gatehouse"), ("user", "carl@otherrealm"),
                              ("group", "admins"), ("group", "devs")}


# --- plan ---------------------------------------------------------------------------------------------


def synced_world():
    members = [person("alice"), person("bob")]
    accesses = [access("alice", "operator", vms=["100"]), access("bob", "viewer")]
    groups = [Group("g1", "ops", 6000, "Ops", False, frozenset({"id-alice", "id-bob"}))]
    roles = [CustomRole("helpdesk", frozenset({"vm.view", "vm.console"}))]
    return members, accesses, groups, roles


def test_a_first_plan_creates_everything_in_apply_order():
    state = desired(*synced_world())
    changes = plan(state, managed(PveState({}, {}, {}, frozenset()), REALM))
    assert [change.kind for change in changes] == ["role", "group", "user", "user"] + ["acl"] * 4
    assert {change.op for change in changes} == {"create"}
    alice = next(change for change in changes if change.key == "alice@gatehouse")
    assert alice.fields == {"firstname": "Alice", "lastname": "Doe", "email": "alice@example.org", "enable": True,
                            "groups": frozenset({"ops"}), "comment": marker(REALM)}
    assert alice.describe()["fields"]["groups"] == ["ops"]


def test_nothing_changed_means_an_empty_plan():
    state = desired(*synced_world())
    assert plan(state, managed(full_state(state, [pve_user("root@pam")]), REALM)) == []


def test_changed_fields_are_updates_of_those_fields_only():
    members, accesses, groups, roles = synced_world()
    before = desired(members, accesses, groups, roles)
    members[0] = dataclasses.replace(members[0], last_name="Smith", status="suspended")
    roles[0] = CustomRole("helpdesk", frozenset({"vm.view"}))
    after = desired(members, accesses, groups, roles)
    changes = plan(after, managed(full_state(before), REALM))
    # The disable is an update of its own, before the data (a refused name never holds it back).
    alice = [change for change in changes if change.kind == "user"]
    assert alice == [PveChange("update", "user", "alice@gatehouse", {"enable": False}),
                     PveChange("update", "user", "alice@gatehouse", {"lastname": "Smith"})]
    assert PveChange("update", "role", "GH_helpdesk", {"privs": frozenset({"VM.Audit"})}) in changes
    assert ("delete", "acl", "/vms/100 PVEVMAdmin user:alice@gatehouse") in ops(changes)  # suspended: no ACL
    assert not any(change.kind == "user" and change.op != "update" for change in changes)


def test_a_removed_member_loses_the_user_and_its_acls_acls_first():
    members, accesses, groups, roles = synced_world()
    before = desired(members, accesses, groups, roles)
    after = desired(members[:1], accesses[:1], groups, roles)
    changes = plan(after, managed(full_state(before), REALM))
    assert ops(changes) == [("delete", "acl", "/ PVEAuditor user:bob@gatehouse"),
                            ("delete", "user", "bob@gatehouse", )]


def test_group_membership_changes_keep_groups_gatehouse_does_not_manage():
    members, accesses, groups, roles = synced_world()
    before = desired(members, accesses, groups, roles)
    alice = dataclasses.replace(before.users["alice@gatehouse"], groups=frozenset({"ops", "handmade"}))
    actual = managed(full_state(before, [alice], [PveGroup("handmade", "by hand")]), REALM)
    assert plan(before, actual) == []  # a hand-made membership is not drift
    after = desired(members, accesses, [dataclasses.replace(groups[0], member_ids=frozenset({"id-bob"}))], roles)
    changes = plan(after, actual)
    assert changes == [PveChange("update", "user", "alice@gatehouse", {"groups": frozenset({"handmade"})})]


def test_drift_is_repaired_and_extras_are_removed():
    state = desired(*synced_world())
    drifted_alice = dataclasses.replace(state.users["alice@gatehouse"], email="evil@example.org", enable=False)
    extra = pve_user("mallory@gatehouse", comment=marker(REALM))
    extra_acl = AclEntry("/", "Administrator", "mallory@gatehouse", "user")
    flipped = AclEntry("/", "PVEAuditor", "bob@gatehouse", "user", propagate=False)
    actual = PveState(users={**state.users, "alice@gatehouse": drifted_alice, extra.userid: extra},
                      groups={}, roles={"GH_helpdesk": frozenset({"Sys.Modify"}), "GH_old": frozenset()},
                      acls=(state.acls - {AclEntry("/", "PVEAuditor", "bob@gatehouse", "user")}) | {extra_acl, flipped})
    changes = plan(state, managed(actual, REALM))
    assert ops(changes) == [  # access taken away first: nothing waits for it
        ("delete", "acl", "/ Administrator user:mallory@gatehouse"),
        ("update", "role", "GH_helpdesk"), ("create", "group", "ops"),
        ("update", "user", "alice@gatehouse"), ("update", "user", "alice@gatehouse"),
        ("update", "acl", "/ PVEAuditor user:bob@gatehouse"),
        ("delete", "user", "mallory@gatehouse"), ("delete", "role", "GH_old")]
    assert [changes[3].fields, changes[4].fields] == [{"enable": True}, {"email": "alice@example.org"}]
    assert changes[5].fields["propagate"] is True


def test_an_id_taken_by_an_object_gatehouse_does_not_manage_is_a_conflict_left_alone():
    members, accesses, groups, roles = synced_world()
    state = desired(members, accesses, groups, roles)
    handmade_bob = pve_user("bob@gatehouse", comment="hand-made", groups={"ops"})
    actual = managed(PveState(users={"bob@gatehouse": handmade_bob}, groups={"ops": PveGroup("ops", "hand-made")},
                              roles={}, acls=frozenset({AclEntry("/", "PVEAdmin", "bob@gatehouse", "user")})), REALM)
    changes = plan(state, actual)
    assert set(ops(changes)[:2]) == {("conflict", "group", "ops"), ("conflict", "user", "bob@gatehouse")}
    assert all("does not manage" in change.fields["reason"] for change in changes[:2])
    touched = {change.key for change in changes[2:]}
    assert "bob@gatehouse" not in touched and "ops" not in touched
    assert not any("bob@gatehouse" in key or key.startswith("ops") for key in touched)
    alice = next(change for change in changes if change.key == "alice@gatehouse")
    assert alice.fields["groups"] == frozenset()  # not added to the hand-made group
