"""The LDAP planner: desired entries, full and targeted plans (pure, no directory)."""
from dataclasses import replace

import pytest

from services.proxmox_sync.domain import Group, Person
from services.proxmox_sync.ldap_plan import (Entry, LdapSettings, dn_key, desired_group, desired_person, plan_full,
                                             plan_people)

SETTINGS = LdapSettings("ldap://127.0.0.1:389", "cn=admin,dc=ex,dc=test", "admin-secret", "dc=ex,dc=test")
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
PRIMARY = 5000


def person(name: str, uid_number: int, status: str = "active", **changes) -> Person:
    return replace(Person(user_id=f"id-{uid_number}", username=name, first_name="Ada", last_name="Lovelace",
                          email=f"{name}@ex.test", uid_number=uid_number, status=status, password_hash=HASH),
                   **changes)


def groups_for(people, ops_members=()) -> list[Group]:
    return [Group("g-all", "ldapusers", PRIMARY, "everyone", False, frozenset(p.user_id for p in people)),
            Group("g-ops", "ops", 5001, "operators", False, frozenset(p.user_id for p in ops_members))]


def directory(people, groups) -> dict:
    """What the directory holds after a perfect sync."""
    plan = plan_full(people, groups, {}, SETTINGS)
    return {dn_key(change.dn): Entry(change.dn, dict(change.attributes)) for change in plan}


def ops(plan) -> list[tuple[str, str]]:
    return [(change.op, change.dn.split(",")[0]) for change in plan]


def test_a_person_is_an_inet_org_posix_shadow_account_bindable_with_the_platform_hash():
    entry = desired_person(person("ada", 1001), SETTINGS, PRIMARY)
    assert entry.dn == "uid=ada,ou=people,dc=ex,dc=test"
    assert set(entry.attributes["objectClass"]) == {"inetOrgPerson", "posixAccount", "shadowAccount"}
    assert entry.attributes["uidNumber"] == ("1001",)
    assert entry.attributes["gidNumber"] == ("5000",)
    assert entry.attributes["homeDirectory"] == ("/home/ada",)
    assert entry.attributes["loginShell"] == ("/bin/bash",)
    assert entry.attributes["cn"] == ("Ada Lovelace",)
    assert entry.attributes["sn"] == ("Lovelace",)
    assert entry.attributes["givenName"] == ("Ada",)
    assert entry.attributes["mail"] == ("ada@ex.test",)
    assert entry.attributes["userPassword"] == ("{ARGON2}" + HASH,)
    assert "shadowExpire" not in entry.attributes


def test_the_login_shell_is_configurable_and_empty_names_fall_back_to_the_username():
    entry = desired_person(person("bob", 1002, first_name="", last_name="", email=None),
                           replace(SETTINGS, login_shell="/bin/zsh"), PRIMARY)
    assert entry.attributes["loginShell"] == ("/bin/zsh",)
    assert entry.attributes["cn"] == ("bob",) and entry.attributes["sn"] == ("bob",)
    assert "givenName" not in entry.attributes and "mail" not in entry.attributes


@pytest.mark.parametrize("status", ["pending", "suspended"])
def test_inactive_people_keep_their_entry_but_cannot_authenticate(status):
    entry = desired_person(person("ada", 1001, status), SETTINGS, PRIMARY)
    assert "userPassword" not in entry.attributes
    assert entry.attributes["shadowExpire"] == ("1",)
    assert entry.attributes["uidNumber"] == ("1001",)


def test_an_active_person_without_a_password_has_no_user_password():
    assert "userPassword" not in desired_person(person("ada", 1001, password_hash=None), SETTINGS, PRIMARY).attributes


def test_a_group_lists_only_its_active_members_sorted():
    people = [person("zed", 1003), person("ada", 1001), person("sus", 1002, "suspended")]
    group = Group("g", "ops", 5001, "operators", False, frozenset(p.user_id for p in people) | {"unknown"})
    entry = desired_group(group, {p.user_id: p for p in people}, SETTINGS)
    assert entry.dn == "cn=ops,ou=groups,dc=ex,dc=test"
    assert entry.attributes["objectClass"] == ("posixGroup",)
    assert entry.attributes["gidNumber"] == ("5001",)
    assert entry.attributes["memberUid"] == ("ada", "zed")


def test_a_fresh_directory_gets_everything_added():
    people = [person("ada", 1001), person("bob", 1002)]
    plan = plan_full(people, groups_for(people), {}, SETTINGS)
    assert sorted(ops(plan)) == [("add", "cn=ldapusers"), ("add", "cn=ops"), ("add", "uid=ada"), ("add", "uid=bob")]


def test_an_in_sync_directory_plans_nothing_whatever_the_case_and_order_of_what_it_returns():
    people = [person("ada", 1001), person("bob", 1002)]
    groups = groups_for(people, ops_members=people)
    actual = directory(people, groups)
    # the server may spell names and classes differently, add `top`, and order values its own way
    shuffled = {}
    for key, entry in actual.items():
        attributes = {name.upper(): tuple(reversed(values)) for name, values in entry.attributes.items()}
        attributes["OBJECTCLASS"] = (*attributes["OBJECTCLASS"], "top")
        shuffled[key] = Entry.of(entry.dn.upper().replace("OU=PEOPLE", "ou=People"), attributes)
    assert plan_full(people, groups, shuffled, SETTINGS) == []
    assert plan_full(people, groups, actual, SETTINGS) == []


def test_a_changed_attribute_is_modified_alone():
    people = [person("ada", 1001)]
    actual = directory(people, groups_for(people))
    plan = plan_full([person("ada", 1001, email="ada@new.test")], groups_for(people), actual, SETTINGS)
    assert len(plan) == 1 and plan[0].op == "modify"
    assert plan[0].modifications == (("replace", "mail", ("ada@new.test",)),)


def test_an_attribute_added_behind_the_planners_back_is_removed_and_extra_entries_deleted():
    people = [person("ada", 1001)]
    actual = directory(people, groups_for(people))
    key = dn_key("uid=ada,ou=people,dc=ex,dc=test")
    actual[key] = Entry.of(actual[key].dn, {**actual[key].attributes, "telephoneNumber": ("123",)})
    actual["uid=ghost,ou=people,dc=ex,dc=test"] = Entry.of("uid=ghost,ou=people,dc=ex,dc=test", {
        "objectClass": ["account"], "uid": "ghost"})  # not even a posixAccount: the subtree is ours anyway
    actual["cn=old,ou=groups,dc=ex,dc=test"] = Entry.of("cn=old,ou=groups,dc=ex,dc=test", {
        "objectClass": ["posixGroup"], "cn": "old", "gidNumber": "7000"})
    plan = plan_full(people, groups_for(people), actual, SETTINGS)
    assert sorted(ops(plan)) == [("delete", "cn=old"), ("delete", "uid=ghost"), ("modify", "uid=ada")]
    modify = next(change for change in plan if change.op == "modify")
    assert modify.modifications == (("replace", "telephonenumber", ()),)


def test_a_removed_person_is_deleted_and_leaves_the_groups():
    ada, bob = person("ada", 1001), person("bob", 1002)
    actual = directory([ada, bob], groups_for([ada, bob], ops_members=[ada, bob]))
    plan = plan_full([ada], groups_for([ada], ops_members=[ada]), actual, SETTINGS)
    assert sorted(ops(plan)) == [("delete", "uid=bob"), ("modify", "cn=ldapusers"), ("modify", "cn=ops")]
    for change in plan:
        if change.op == "modify":
            assert change.modifications == (("replace", "memberUid", ("ada",)),)


def test_suspension_removes_the_password_and_the_memberships_and_reactivation_restores_them():
    ada, bob = person("ada", 1001), person("bob", 1002)
    active = directory([ada, bob], groups_for([ada, bob], ops_members=[ada, bob]))
    suspended = replace(ada, status="suspended")
    plan = plan_full([suspended, bob], groups_for([suspended, bob], ops_members=[suspended, bob]), active, SETTINGS)
    by_dn = {change.dn.split(",")[0]: change for change in plan}
    assert set(by_dn) == {"uid=ada", "cn=ldapusers", "cn=ops"}
    assert set(by_dn["uid=ada"].modifications) == {("replace", "shadowExpire", ("1",)),
                                                   ("replace", "userPassword", ())}
    assert by_dn["cn=ops"].modifications == (("replace", "memberUid", ("bob",)),)

    after = directory([suspended, bob], groups_for([suspended, bob], ops_members=[suspended, bob]))
    plan = plan_full([ada, bob], groups_for([ada, bob], ops_members=[ada, bob]), after, SETTINGS)
    by_dn = {change.dn.split(",")[0]: change for change in plan}
    assert set(by_dn["uid=ada"].modifications) == {("replace", "shadowExpire", ()),
                                                   ("replace", "userPassword", ("{ARGON2}" + HASH,))}
    assert by_dn["cn=ops"].modifications == (("replace", "memberUid", ("ada", "bob")),)


def test_a_rename_moves_the_entry_by_uid_number_then_fixes_what_follows_the_name():
    ada = person("ada", 1001)
    actual = directory([ada], groups_for([ada], ops_members=[ada]))
    renamed = replace(ada, username="ada2")
    plan = plan_full([renamed], groups_for([renamed], ops_members=[renamed]), actual, SETTINGS)
    assert ops(plan) == [("rename", "uid=ada"), ("modify", "uid=ada2"), ("modify", "cn=ldapusers"),
                         ("modify", "cn=ops")]
    assert plan[0].new_dn == "uid=ada2,ou=people,dc=ex,dc=test"
    assert plan[1].modifications == (("replace", "homeDirectory", ("/home/ada2",)),)


def test_swapped_usernames_go_through_a_parking_name():
    ada, bob = person("ada", 1001), person("bob", 1002)
    actual = directory([ada, bob], groups_for([ada, bob]))
    swapped = [replace(ada, username="bob"), replace(bob, username="ada")]
    plan = plan_full(swapped, groups_for(swapped), actual, SETTINGS)
    renames = [(change.dn.split(",")[0], change.new_rdn) for change in plan if change.op == "rename"]
    assert renames == [("uid=ada", "uid=gatehouse-renaming-1001"), ("uid=bob", "uid=ada"),
                       ("uid=gatehouse-renaming-1001", "uid=bob")]
    assert not [change for change in plan if change.op in ("add", "delete")]


def test_an_entry_of_another_structural_class_is_replaced_not_modified():
    ada = person("ada", 1001)
    actual = directory([ada], groups_for([ada]))
    key = dn_key("uid=ada,ou=people,dc=ex,dc=test")
    actual[key] = Entry.of(actual[key].dn, {**actual[key].attributes, "objectClass": ["account", "posixAccount"]})
    plan = plan_full([ada], groups_for([ada]), actual, SETTINGS)
    assert ops(plan) == [("delete", "uid=ada"), ("add", "uid=ada")]


def test_the_primary_group_must_be_known():
    with pytest.raises(ValueError, match="ldapusers"):
        plan_full([person("ada", 1001)], [], {}, SETTINGS)


def test_describe_names_attributes_never_values():
    ada = person("ada", 1001)
    actual = directory([ada], groups_for([ada]))
    changed = replace(ada, password_hash=HASH.replace("aGFz", "bmV3"))
    plans = plan_full([ada], groups_for([ada]), {}, SETTINGS) + plan_full([changed], groups_for([ada]), actual,
                                                                          SETTINGS)
    for change in plans:
        described = change.describe()
        assert set(described) <= {"op", "dn", "attributes", "new_dn"}
        assert "argon2" not in str(described) and "argon2" not in repr(change)
    assert plans[-1].describe() == {"op": "modify", "dn": "uid=ada,ou=people,dc=ex,dc=test",
                                    "attributes": ["userPassword"]}
    assert "argon2" not in repr(desired_person(ada, SETTINGS, PRIMARY))
    assert "admin-secret" not in repr(SETTINGS)


# --- targeted plans

def crowd(n: int) -> list[Person]:
    return [person(f"user{i}", 2000 + i) for i in range(n)]


def test_a_targeted_plan_touches_only_its_people_and_their_own_member_values():
    others = crowd(50)
    ada = person("ada", 1001)
    actual = directory([*others, ada], groups_for([*others, ada], ops_members=[others[0]]))
    # ada joins ops and changes her mail; the other 50 members are not rewritten
    changed = replace(ada, email="ada@new.test")
    plan = plan_people({1001: changed}, {1001: {"ldapusers", "ops"}}, actual, SETTINGS, PRIMARY)
    by_dn = {change.dn.split(",")[0]: change for change in plan}
    assert set(by_dn) == {"uid=ada", "cn=ops"}
    assert by_dn["cn=ops"].modifications == (("add", "memberUid", ("ada",)),)

    plan = plan_people({1001: ada}, {1001: set()}, actual, SETTINGS, PRIMARY)  # ada leaves every group
    assert [(c.dn.split(",")[0], c.modifications) for c in plan] == [
        ("cn=ldapusers", (("delete", "memberUid", ("ada",)),))]


def test_a_targeted_plan_for_a_suspended_person_drops_password_and_memberships_only():
    others = crowd(5)
    ada = person("ada", 1001)
    actual = directory([*others, ada], groups_for([*others, ada], ops_members=[ada, others[0]]))
    suspended = replace(ada, status="suspended")
    plan = plan_people({1001: suspended}, {1001: {"ldapusers", "ops"}}, actual, SETTINGS, PRIMARY)
    by_dn = {change.dn.split(",")[0]: change for change in plan}
    assert set(by_dn) == {"uid=ada", "cn=ldapusers", "cn=ops"}
    assert by_dn["cn=ops"].modifications == (("delete", "memberUid", ("ada",)),)
    assert by_dn["cn=ldapusers"].modifications == (("delete", "memberUid", ("ada",)),)


def test_a_targeted_plan_removes_a_deleted_person_by_uid_number():
    others = crowd(3)
    ada = person("ada", 1001)
    actual = directory([*others, ada], groups_for([*others, ada], ops_members=[ada]))
    plan = plan_people({1001: None}, {}, actual, SETTINGS, PRIMARY)
    assert sorted(ops(plan)) == [("delete", "uid=ada"), ("modify", "cn=ldapusers"), ("modify", "cn=ops")]
    assert all(change.modifications == (("delete", "memberUid", ("ada",)),) for change in plan
               if change.op == "modify")


def test_a_targeted_rename_moves_the_entry_and_its_memberships():
    others = crowd(3)
    ada = person("ada", 1001)
    actual = directory([*others, ada], groups_for([*others, ada], ops_members=[ada]))
    renamed = replace(ada, username="lovelace")
    plan = plan_people({1001: renamed}, {1001: {"ldapusers", "ops"}}, actual, SETTINGS, PRIMARY)
    assert ops(plan)[:2] == [("rename", "uid=ada"), ("modify", "uid=lovelace")]
    groups = [change for change in plan if change.kind == "group"]
    assert len(groups) == 2
    assert all(change.modifications == (("delete", "memberUid", ("ada",)), ("add", "memberUid", ("lovelace",)))
               for change in groups)


def test_a_targeted_plan_of_a_new_person_adds_the_entry_and_the_member_values():
    others = crowd(3)
    actual = directory(others, groups_for(others))
    ada = person("ada", 1001)
    plan = plan_people({1001: ada}, {1001: {"ldapusers"}}, actual, SETTINGS, PRIMARY)
    assert sorted(ops(plan)) == [("add", "uid=ada"), ("modify", "cn=ldapusers")]
    assert plan_people({1001: ada}, {1001: {"ldapusers"}}, {}, SETTINGS, PRIMARY)[0].op == "add"


def test_a_distinguished_name_with_a_trailing_newline_is_refused():
    from services.proxmox_sync.domain import directory_problems

    problems = directory_problems({"url": "ldap://h", "bind_dn": "cn=admin,dc=x\n", "base_dn": "dc=x"}, True)
    assert "bind_dn" in problems and "base_dn" not in problems
