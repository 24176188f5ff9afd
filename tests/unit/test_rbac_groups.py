"""Groups belong to a tenant: the rbac service's group entrypoints on a migrated SQLite database,
without a broker (tenancy's and identity's membership answers faked)."""
from __future__ import annotations

import pytest

from kernel.envelope import SYSTEM, Actor, Event, Resource
from kernel.errors import Conflict, Forbidden, GatehouseError, NotFound, ValidationFailed
from services.rbac import domain, events, storage
from services.tenancy import events as tenancy_events
from tests.unit.conftest import rbac_service, user_created

ROOT = Actor(user_id="root-1", username="root").__dict__
ADMIN_1 = Actor(user_id="adm-1", username="adm1").__dict__
ADMIN_2 = Actor(user_id="adm-2", username="adm2").__dict__
LDAPUSERS, SYSADMINS = (group.id for group in domain.BUILTIN_GROUPS)
UNKNOWN = "00000000-0000-0000-0000-00000000dead"


user_event = user_created


@pytest.fixture
def rbac(tmp_path):
    """root (first admin, default); adm-1 admin of t1 with member u-1; adm-2 admin of t2 with member u-2."""
    service = rbac_service(tmp_path)
    service.tenancy.join("root-1")
    service.enrol_new_user(user_event("root-1", first_admin=True))
    for user_id, tenant_id, role in (("adm-1", "t1", "admin"), ("u-1", "t1", None),
                                     ("adm-2", "t2", "admin"), ("u-2", "t2", None)):
        service.tenancy.join(user_id, tenant_id)
        service.enrol_new_user(user_event(user_id))
        if role:
            service.assign_role(ROOT, user_id, role, tenant_id=tenant_id)
    yield service
    service.db.dispose()


def refusal(call, *args, **kwargs) -> GatehouseError:
    with pytest.raises(GatehouseError) as caught:
        call(*args, **kwargs)
    return caught.value


def answer(error: GatehouseError) -> tuple:
    return type(error), error.code, error.message, error.details


def test_a_group_belongs_to_the_tenant_it_was_created_in_and_is_its_own(rbac):
    ops = rbac.create_group(ADMIN_1, "ops", description="T1 operations", tenant_id="t1")
    assert (ops["tenant_id"], ops["platform"]) == ("t1", False)
    assert "ops" in {g["cn"] for g in rbac.list_groups(tenant_id="t1")["items"]}
    seen_by_t2 = {g["cn"] for g in rbac.list_groups(tenant_id="t2")["items"]}
    assert seen_by_t2 == {"ldapusers", "sysadmins"}  # the platform-wide ones only
    assert rbac.get_group(ops["id"], tenant_id="t1")["description"] == "T1 operations"


def test_another_tenants_group_answers_exactly_like_an_unknown_id(rbac):
    ops = rbac.create_group(ADMIN_1, "ops", tenant_id="t1")
    rbac.add_member(ADMIN_1, ops["id"], "u-1", tenant_id="t1")
    calls = {
        "get": lambda gid: rbac.get_group(gid, tenant_id="t2"),
        "update": lambda gid: rbac.update_group(ADMIN_2, gid, {"cn": "stolen"}, tenant_id="t2"),
        "delete": lambda gid: rbac.delete_group(ADMIN_2, gid, tenant_id="t2"),
        "members": lambda gid: rbac.list_members(gid, tenant_id="t2"),
        "member": lambda gid: rbac.get_member(gid, "u-1", tenant_id="t2"),
        "add": lambda gid: rbac.add_member(ADMIN_2, gid, "u-2", tenant_id="t2"),
        "remove": lambda gid: rbac.remove_member(ADMIN_2, gid, "u-1", tenant_id="t2"),
    }
    for name, call in calls.items():
        theirs, unknown = refusal(call, ops["id"]), refusal(call, UNKNOWN)
        assert answer(theirs) == answer(unknown), name
        assert (type(theirs), theirs.code) == (NotFound, "group_not_found"), name
    # ...and nothing changed: T1 still sees its group, its name and its member
    assert rbac.get_group(ops["id"], tenant_id="t1")["cn"] == "ops"
    assert [m["user_id"] for m in rbac.list_members(ops["id"], tenant_id="t1")["items"]] == ["u-1"]


def test_a_super_admin_reaches_a_tenants_groups_from_that_tenant_only(rbac):
    ops = rbac.create_group(ADMIN_1, "ops", tenant_id="t1")
    assert answer(refusal(rbac.get_group, ops["id"], tenant_id="t2")) == answer(
        refusal(rbac.get_group, UNKNOWN, tenant_id="t2"))
    assert rbac.update_group(ROOT, ops["id"], {"description": "by root"}, tenant_id="t1")["description"] == "by root"


def test_members_of_a_tenants_group_must_belong_to_the_tenant(rbac):
    ops = rbac.create_group(ADMIN_1, "ops", tenant_id="t1")
    theirs = refusal(rbac.add_member, ADMIN_1, ops["id"], "u-2", tenant_id="t1")
    unknown = refusal(rbac.add_member, ADMIN_1, ops["id"], "nobody", tenant_id="t1")
    assert isinstance(theirs, NotFound)
    assert answer(theirs)[:3] == answer(unknown)[:3]  # the details name the id asked about, nothing else
    assert theirs.details == {"user_id": "u-2"}
    # a super admin is held to it too
    assert isinstance(refusal(rbac.add_member, ROOT, ops["id"], "u-2", tenant_id="t1"), NotFound)
    member, added = rbac.add_member(ADMIN_1, ops["id"], "u-1", tenant_id="t1")
    assert added and member["user_id"] == "u-1"


def test_a_user_created_moments_ago_counts_by_identitys_read_model(rbac):
    """tenancy enrols a new user on identity's event; identity wrote the first membership at once."""
    ops = rbac.create_group(ADMIN_1, "ops", tenant_id="t1")

    class Tenancy:
        def memberships_of(self, user_id):
            return []

    identity = rbac.tenancy
    rbac.tenancy = Tenancy()
    identity.join("fresh", "t1")
    assert rbac.add_member(ADMIN_1, ops["id"], "fresh", tenant_id="t1")[1]
    assert isinstance(refusal(rbac.add_member, ADMIN_1, ops["id"], "nobody", tenant_id="t1"), NotFound)


def test_platform_groups_are_seen_everywhere_and_changed_by_super_admins_only(rbac):
    for actor, tenant, user in ((ADMIN_1, "t1", "u-1"), (ADMIN_2, "t2", "u-2")):
        for call in (lambda: rbac.update_group(actor, LDAPUSERS, {"description": "mine"}, tenant_id=tenant),
                     lambda: rbac.delete_group(actor, SYSADMINS, tenant_id=tenant),
                     lambda: rbac.remove_member(actor, LDAPUSERS, user, tenant_id=tenant),
                     lambda: rbac.add_member(actor, SYSADMINS, user, tenant_id=tenant)):
            error = refusal(call)
            assert isinstance(error, Forbidden)
    assert refusal(rbac.update_group, ADMIN_1, LDAPUSERS, {"description": "x"}, tenant_id="t1").code == \
        "platform_group_protected"
    assert refusal(rbac.create_group, ADMIN_1, "shared", platform=True, tenant_id="t1").code == "super_admin_only"
    shared = rbac.create_group(ROOT, "shared", description="everyone's", platform=True)
    assert (shared["tenant_id"], shared["platform"]) == (None, True)
    assert shared["id"] in {g["id"] for g in rbac.list_groups(tenant_id="t2")["items"]}
    assert refusal(rbac.delete_group, ADMIN_2, shared["id"], tenant_id="t2").code == "platform_group_protected"
    assert rbac.update_group(ROOT, LDAPUSERS, {"description": "All"}, tenant_id="t1")["description"] == "All"
    rbac.delete_group(ROOT, shared["id"], tenant_id="t2")


def test_a_platform_groups_members_are_shown_as_far_as_they_belong_to_the_tenant(rbac):
    shown = {m["user_id"] for m in rbac.list_members(LDAPUSERS, tenant_id="t1")["items"]}
    assert shown == {"adm-1", "u-1"}
    assert rbac.list_members(LDAPUSERS, tenant_id="t1")["total"] == 2
    count = {g["cn"]: g["member_count"] for g in rbac.list_groups(tenant_id="t1")["items"]}
    assert count["ldapusers"] == 2
    assert rbac.get_group(LDAPUSERS, tenant_id="t2")["member_count"] == 2
    assert answer(refusal(rbac.get_member, LDAPUSERS, "u-2", tenant_id="t1")) == answer(
        refusal(rbac.get_member, LDAPUSERS, "nobody", tenant_id="t1"))
    assert rbac.get_member(LDAPUSERS, "u-2", tenant_id="t2")["user_id"] == "u-2"


def test_cn_and_gid_stay_unique_across_the_directory_and_the_refusal_names_nothing_of_another_tenants_holder(rbac):
    rbac.create_group(ADMIN_1, "secret-ops", gid_number=7000, description="T1's plans", tenant_id="t1")
    rbac.create_group(ADMIN_2, "mine", gid_number=7001, tenant_id="t2")
    theirs = refusal(rbac.create_group, ADMIN_2, "secret-ops", tenant_id="t2")
    own = refusal(rbac.create_group, ADMIN_2, "mine", tenant_id="t2")
    assert (type(theirs), theirs.code, theirs.details) == (Conflict, "group_exists", {"cn": "already in use"})
    assert answer(theirs)[1:] == (own.code, own.message.replace("'mine'", "'secret-ops'"), own.details)
    assert "t1" not in theirs.message and "plans" not in theirs.message
    gid = refusal(rbac.create_group, ADMIN_2, "other", gid_number=7000, tenant_id="t2")
    assert (gid.code, gid.details) == ("gid_taken", {"gid_number": "already in use"})
    assert "secret" not in gid.message and "t1" not in gid.message
    # the next free GID skips every tenant's
    assert rbac.create_group(ADMIN_2, "auto", tenant_id="t2")["gid_number"] not in (7000, 7001)


def test_a_taken_gid_names_its_holder_when_the_tenant_sees_it(rbac):
    rbac.create_group(ADMIN_1, "secret-ops", gid_number=7000, tenant_id="t1")
    mine = rbac.create_group(ADMIN_2, "mine", gid_number=7001, tenant_id="t2")
    own = refusal(rbac.create_group, ADMIN_2, "other", gid_number=7001, tenant_id="t2")
    assert (type(own), own.code, own.details) == (Conflict, "gid_taken",
                                                  {"gid_number": "already in use by the group 'mine'"})
    ldapusers = rbac.get_group(LDAPUSERS, tenant_id="t2")  # platform-wide: every tenant sees it
    platform = refusal(rbac.update_group, ADMIN_2, mine["id"], {"gid_number": ldapusers["gid_number"]}, tenant_id="t2")
    assert platform.details == {"gid_number": "already in use by the group 'ldapusers'"}
    theirs = refusal(rbac.update_group, ADMIN_2, mine["id"], {"gid_number": 7000}, tenant_id="t2")
    assert (theirs.code, theirs.details) == ("gid_taken", {"gid_number": "already in use"})
    assert "secret" not in theirs.message and "t1" not in theirs.message


def test_the_next_gid_is_what_a_creation_without_one_gets_skipping_every_tenants(rbac):
    first = rbac.next_gid(ADMIN_1, tenant_id="t1")
    assert first["gid_min"] <= first["gid_number"] <= first["gid_max"]
    rbac.create_group(ADMIN_1, "t1-group", gid_number=first["gid_number"], tenant_id="t1")
    suggested = rbac.next_gid(ADMIN_2, tenant_id="t2")  # the same answer for every tenant: the range is the directory's
    assert suggested["gid_number"] != first["gid_number"]
    assert rbac.create_group(ADMIN_2, "t2-group", tenant_id="t2")["gid_number"] == suggested["gid_number"]


def test_the_next_gid_is_told_to_rbac_admins_of_the_tenant_only(rbac):
    """It tells which GIDs are taken across tenants: admin.rbac in the tenant, checked by rbac itself."""
    for actor, tenant_id in ((Actor(user_id="u-1", username="u1").__dict__, "t1"), (ADMIN_1, "t2")):
        refused = refusal(rbac.next_gid, actor, tenant_id=tenant_id)
        assert (type(refused), refused.code) == (Forbidden, "permission_denied")
    assert rbac.next_gid(ROOT)["gid_number"] is not None


def test_add_to_groups_and_unknown_groups_resolve_names_in_the_tenant(rbac):
    rbac.create_group(ADMIN_1, "t1-ops", tenant_id="t1")
    rbac.create_group(ADMIN_2, "t2-ops", tenant_id="t2")
    assert rbac.unknown_groups(["t1-ops", "t2-ops", "ldapusers"], tenant_id="t2") == ["t1-ops"]
    error = refusal(rbac.add_to_groups, ADMIN_2, "u-2", ["t1-ops"], tenant_id="t2")
    assert (type(error), error.code) == (ValidationFailed, "unknown_group")
    access = rbac.add_to_groups(ADMIN_2, "u-2", ["t2-ops", "ldapusers"], tenant_id="t2")  # already in ldapusers
    assert access["groups"] == ["ldapusers", "t2-ops"]
    assert isinstance(refusal(rbac.add_to_groups, ADMIN_2, "u-1", ["t2-ops"], tenant_id="t2"), NotFound)
    assert refusal(rbac.add_to_groups, ADMIN_2, "u-2", ["sysadmins"], tenant_id="t2").code == "super_admin_only"
    shared = rbac.create_group(ROOT, "shared", platform=True)
    assert refusal(rbac.add_to_groups, ADMIN_2, "u-2", ["shared"], tenant_id="t2").code == "platform_group_protected"
    assert rbac.add_to_groups(ROOT, "u-2", ["shared"], tenant_id="t2")["groups"] == ["ldapusers", "shared", "t2-ops"]
    assert shared["platform"]


def test_a_users_groups_are_shown_as_seen_from_the_tenant(rbac):
    t1 = rbac.create_group(ADMIN_1, "t1-ops", tenant_id="t1")
    t2 = rbac.create_group(ADMIN_2, "t2-ops", tenant_id="t2")
    rbac.tenancy.join("u-1", "t2")  # in both tenants
    rbac.add_member(ROOT, t1["id"], "u-1", tenant_id="t1")  # in two tenants: a super admin's
    rbac.add_member(ROOT, t2["id"], "u-1", tenant_id="t2")
    assert {g["cn"] for g in rbac.user_groups("u-1", tenant_id="t2")} == {"ldapusers", "t2-ops"}
    assert rbac.user_access("u-1", "t1")["groups"] == ["ldapusers", "t1-ops"]
    assert {g["cn"] for g in rbac.effective_permissions("u-1", "t2")["groups"]} == {"ldapusers", "t2-ops"}
    assert {g["cn"] for g in rbac.user_groups("u-1")} == {"ldapusers", "t1-ops", "t2-ops"}  # internal: all


def tenancy_event(type_, tenant_id, **data) -> dict:
    return Event(type=type_, source="tenancy", category="tenancy", actor=SYSTEM,
                 resource=Resource("tenant" if type_ == tenancy_events.TENANT_DELETED else "user",
                                   tenant_id if type_ == tenancy_events.TENANT_DELETED else data["user_id"], None),
                 data={"tenant_id": tenant_id, **data}, tenant_ids=(tenant_id,)).to_dict()


def test_a_user_leaving_a_tenant_leaves_its_groups_only(rbac):
    t1 = rbac.create_group(ADMIN_1, "t1-ops", tenant_id="t1")
    t2 = rbac.create_group(ADMIN_2, "t2-ops", tenant_id="t2")
    rbac.tenancy.join("u-1", "t2")
    rbac.add_member(ROOT, t1["id"], "u-1", tenant_id="t1")  # in two tenants: a super admin's
    rbac.add_member(ROOT, t2["id"], "u-1", tenant_id="t2")
    rbac.tenancy.leave("u-1", "t1")
    rbac.revoke_tenant_role(tenancy_event(tenancy_events.USER_REMOVED_FROM_TENANT, "t1", user_id="u-1",
                                          username="u-1", reason="removed"))
    assert {g["cn"] for g in rbac.user_groups("u-1")} == {"ldapusers", "t2-ops"}


def test_a_deleted_tenants_groups_go_with_it(rbac):
    t1 = rbac.create_group(ADMIN_1, "t1-ops", tenant_id="t1")
    rbac.add_member(ADMIN_1, t1["id"], "u-1", tenant_id="t1")
    t2 = rbac.create_group(ADMIN_2, "t2-ops", tenant_id="t2")
    rbac.forget_deleted_tenant(tenancy_event(tenancy_events.TENANT_DELETED, "t1"))
    with rbac.db.unit_of_work() as uow:
        assert uow.session.get(storage.Group, t1["id"]) is None
        assert uow.session.get(storage.Group, t2["id"]) is not None
        assert uow.session.get(storage.GroupMember, (t1["id"], "u-1")) is None
    assert {g["cn"] for g in rbac.user_groups("u-1")} == {"ldapusers"}


def test_directory_groups_hold_every_group_or_those_a_tenants_proxmox_mirrors(rbac):
    rbac.create_group(ADMIN_1, "t1-ops", tenant_id="t1")
    rbac.create_group(ADMIN_2, "t2-ops", tenant_id="t2")
    assert {g["cn"] for g in rbac.directory_groups()} == {"ldapusers", "sysadmins", "t1-ops", "t2-ops"}
    mirrored = {g["cn"]: g for g in rbac.directory_groups(user_ids=["adm-1", "u-1"], tenant_id="t1")}
    assert set(mirrored) == {"ldapusers", "sysadmins", "t1-ops"}
    assert (mirrored["t1-ops"]["tenant_id"], mirrored["ldapusers"]["tenant_id"]) == ("t1", None)
    assert set(mirrored["ldapusers"]["member_ids"]) == {"adm-1", "u-1"}


def test_group_events_carry_the_groups_tenant():
    group = storage.Group(id="g", cn="ops", gid_number=7000, description="", is_admin=False, builtin=False,
                          tenant_id="t1")
    actor = Actor.from_dict(ADMIN_1)
    for event in (events.group_created(group, actor), events.group_updated(group, actor, {}),
                  events.group_deleted(group, actor, 0), events.member_added(group, "u-1", "u", actor),
                  events.member_removed(group, "u-1", "u", actor)):
        assert event.tenant_ids == ("t1",) and event.data["tenant_id"] == "t1"
    platform = storage.Group(id="p", cn="shared", gid_number=7001, description="", is_admin=False, builtin=False,
                             tenant_id=None)
    assert events.group_created(platform, actor).tenant_ids == ()


def test_group_names_and_gids_tried_are_limited_per_administrator(rbac):
    """Group names and GIDs are unique across tenants, so a refused one tells it is taken somewhere
    (docs/security.md): every attempt, refused or not, counts against GATEHOUSE_GROUP_NAMES_PER_ADMIN."""
    from kernel.config import Config
    from kernel.errors import TooManyRequests

    rbac.config = {"GATEHOUSE": Config.from_env({"GATEHOUSE_GROUP_NAMES_PER_ADMIN": "3"})}
    theirs = rbac.create_group(ADMIN_2, "secret-team", tenant_id="t2")
    ours = rbac.create_group(ADMIN_1, "ours", tenant_id="t1")  # 1
    assert refusal(rbac.create_group, ADMIN_1, "secret-team", tenant_id="t1").code == "group_exists"  # 2
    assert refusal(rbac.update_group, ADMIN_1, ours["id"], {"gid_number": theirs["gid_number"]},
                   tenant_id="t1").code == "gid_taken"  # 3
    limited = refusal(rbac.create_group, ADMIN_1, "another", tenant_id="t1")
    assert isinstance(limited, TooManyRequests) and limited.code == "rate_limited"
    assert limited.details["limit"] == "group_names_per_admin" and limited.details["retry_after"] >= 1
    assert refusal(rbac.update_group, ADMIN_1, ours["id"], {"cn": "renamed"}, tenant_id="t1").code == "rate_limited"
    rbac.update_group(ADMIN_1, ours["id"], {"description": "not a name"}, tenant_id="t1")  # not counted
    rbac.create_group(ADMIN_2, "theirs-too", tenant_id="t2")  # another administrator's own count
    rbac.create_group(Actor(username="cli").__dict__, "by-the-operator", tenant_id="t1")  # the CLI is not counted
    assert [g["cn"] for g in rbac.list_groups(tenant_id="t1")["items"] if not g.get("builtin")].count("another") == 0
