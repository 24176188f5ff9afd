"""The authority rule (rbac.domain.authority_problem), and the services enforcing it on their own: rbac's
check_authority on its database, identity's and tenancy's account changes asking a real rbac (no broker,
no gateway), and the platform settings refusing anyone but super admins and the operator CLI."""
from __future__ import annotations

import pytest

from kernel.config import Config
from kernel.envelope import Actor
from kernel.errors import Forbidden, ValidationFailed
from services.rbac.domain import (
    ADMIN, MORE_RIGHTS, NO_TENANT, NOT_ADMINISTERED, OPERATOR, PERMISSIONS, TARGET_SUPER_ADMIN, VIEWER, Grant,
    authority_problem, grant_of, permissions_of, role_problems, scope_covers,
)
from tests.unit.conftest import migrated, rbac_service, user_created

ALL = frozenset(PERMISSIONS)


def grant(*permissions, scope=None) -> Grant:
    return grant_of(None, permissions, False, scope)


ADMIN_GRANT = grant(*permissions_of(ADMIN))


# --- the pure rule --------------------------------------------------------------------------------


def test_a_super_admin_acts_on_anyone_even_other_super_admins():
    assert authority_problem({}, {"t1": ADMIN_GRANT}, True, actor_is_super_admin=True) is None
    assert authority_problem({}, {}, True, actor_is_super_admin=True) is None


def test_nobody_else_acts_on_a_super_admin():
    everything = {"default": grant(*ALL)}
    assert authority_problem(everything, {"default": Grant()}, True).reason == TARGET_SUPER_ADMIN


def test_an_admin_acts_on_an_equal_or_lesser_member_of_their_tenant():
    actor = {"t1": ADMIN_GRANT}
    for role in (ADMIN, OPERATOR, VIEWER):
        assert authority_problem(actor, {"t1": grant(*permissions_of(role))}, False) is None
    assert authority_problem(actor, {"t1": Grant()}, False) is None  # a member without a role


def test_a_target_holding_a_permission_the_actor_lacks_is_out_of_reach():
    actor = {"t1": grant("admin.users", "admin.rbac", "vm.view")}
    problem = authority_problem(actor, {"t1": ADMIN_GRANT}, False)
    assert problem.reason == MORE_RIGHTS
    assert problem.tenant_ids == ("t1",)
    assert set(problem.missing) == set(permissions_of(ADMIN)) - {"admin.users", "admin.rbac", "vm.view"}


def test_without_admin_users_in_a_tenant_of_the_target_nothing_goes():
    actor = {"t1": ADMIN_GRANT, "t2": grant(*permissions_of(OPERATOR))}
    problem = authority_problem(actor, {"t1": Grant(), "t2": Grant()}, False)
    assert problem.reason == NOT_ADMINISTERED and problem.tenant_ids == ("t2",)
    # a tenant the actor does not belong to at all
    assert authority_problem({"t1": ADMIN_GRANT}, {"t1": Grant(), "t3": Grant()}, False).tenant_ids == ("t3",)


def test_every_tenant_of_the_target_counts():
    actor = {"t1": ADMIN_GRANT, "t2": grant("admin.users", "vm.view")}
    assert authority_problem(actor, {"t1": ADMIN_GRANT, "t2": grant("vm.view")}, False) is None
    problem = authority_problem(actor, {"t1": grant("vm.view"), "t2": grant("vm.view", "vm.start")}, False)
    assert (problem.reason, problem.tenant_ids, problem.missing) == (MORE_RIGHTS, ("t2",), ("vm.start",))


def test_a_target_of_no_tenant_is_super_admins_alone():
    assert authority_problem({"t1": ADMIN_GRANT}, {}, False).reason == NO_TENANT


def test_a_narrower_scope_does_not_cover_a_wider_one():
    actor = {"t1": grant(*permissions_of(ADMIN), scope={"connections": ["c1"]})}
    assert authority_problem(actor, {"t1": grant("vm.view")}, False).reason == MORE_RIGHTS
    assert authority_problem(actor, {"t1": grant("vm.view", scope={"connections": ["c1"]})}, False) is None
    assert not scope_covers({"nodes": ["a"]}, {"nodes": ["a", "b"]})
    assert scope_covers({}, {"nodes": ["a"]}) and scope_covers({"nodes": ["a", "b"]}, {"nodes": ["b"]})


def test_admin_settings_belongs_to_super_admins_only():
    assert "admin.settings" not in permissions_of(ADMIN) | permissions_of(OPERATOR) | permissions_of(VIEWER)
    assert "admin.settings" in grant_of("super_admin", (), True).permissions
    # a stored role that still names it grants it to nobody
    assert "admin.settings" not in grant_of("legacy", ["admin.settings", "vm.view"], False).permissions
    assert "admin.settings" in role_problems("ops", "", ["admin.settings", "vm.view"])["permissions"]


# --- rbac's check_authority on its database --------------------------------------------------------

ROOT = Actor(user_id="root-1", username="root").__dict__


user_event = user_created


@pytest.fixture
def rbac(tmp_path):
    service = rbac_service(tmp_path)
    service.enrol_new_user(user_event("root-1", first_admin=True))
    for user_id, tenant, role in (("adm1", "t1", ADMIN), ("adm2", "t2", ADMIN), ("op1", "t1", OPERATOR),
                                  ("two", "t1", VIEWER), ("two", "t2", VIEWER), ("adm1b", "t1", ADMIN)):
        service.enrol_new_user(user_event(user_id)) if user_id not in service.identity.tenants else None
        service.identity.join(user_id, tenant)
        service.assign_role(ROOT, user_id, role, tenant)
    yield service
    service.db.dispose()


def refusal(call) -> Forbidden:
    with pytest.raises(Forbidden) as refused:
        call()
    assert refused.value.code == "outside_authority"
    return refused.value


def test_rbac_refuses_a_tenant_admin_on_a_super_admin(rbac):
    error = refusal(lambda: rbac.check_authority("adm1", "root-1", ["default"]))
    assert error.details == {"user_id": "root-1", "reason": TARGET_SUPER_ADMIN}


def test_rbac_lets_an_admin_act_in_their_tenant_and_super_admins_everywhere(rbac):
    rbac.check_authority("adm1", "op1", ["t1"])
    rbac.check_authority("adm1", "adm1b")
    rbac.check_authority("root-1", "adm2")
    rbac.check_authority("root-1", "root-1")


def test_rbac_adds_the_targets_role_tenants_to_those_the_caller_names(rbac):
    error = refusal(lambda: rbac.check_authority("adm1", "two", ["t1"]))  # also viewer in t2
    assert error.details["reason"] == NOT_ADMINISTERED and "t2" not in str(error.details)
    refusal(lambda: rbac.check_authority("adm1", "adm2"))
    refusal(lambda: rbac.check_authority("op1", "two", ["t1"]))


def test_rbac_names_the_missing_permissions_in_a_tenant_the_actor_administers(rbac):
    rbac.create_role(ROOT, "helpdesk", ["admin.users", "admin.rbac", "vm.view"], "", "t1")
    rbac.enrol_new_user(user_event("desk"))
    rbac.identity.join("desk", "t1")
    rbac.assign_role(ROOT, "desk", "helpdesk", "t1")
    error = refusal(lambda: rbac.check_authority("desk", "adm1", ["t1"]))
    assert error.details["reason"] == MORE_RIGHTS and "vm.start" in error.details["permissions"]
    rbac.check_authority("desk", "desk", ["t1"])


def test_rbacs_own_changes_refuse_outside_the_actors_authority(rbac):
    adm1 = Actor(user_id="adm1", username="adm1").__dict__
    rbac.identity.join("root-1", "t1")
    refusal(lambda: rbac.assign_role(adm1, "root-1", VIEWER, "t1"))
    refusal(lambda: rbac.unassign_role(adm1, "two", "t1"))  # two is also in t2
    refusal(lambda: rbac.add_to_groups(adm1, "two", ["ldapusers"], tenant_id="t1"))
    group = rbac.create_group(ROOT, "devs", tenant_id="t1")
    refusal(lambda: rbac.add_member(adm1, group["id"], "root-1", tenant_id="t1"))
    rbac.add_member(ROOT, group["id"], "two", tenant_id="t1")
    refusal(lambda: rbac.remove_member(adm1, group["id"], "two", tenant_id="t1"))
    rbac.assign_role(adm1, "op1", VIEWER, "t1")  # within reach
    assert {a["role"] for a in rbac.user_roles("op1")} == {VIEWER}


def test_custom_roles_may_not_hold_admin_settings(rbac):
    with pytest.raises(ValidationFailed) as refused:
        rbac.create_role(ROOT, "settings", ["admin.settings"], "", "t1")
    assert "admin.settings" in refused.value.details["permissions"]


# --- identity and tenancy ask rbac themselves ------------------------------------------------------


@pytest.fixture
def identity(tmp_path, rbac):
    from services.identity import storage
    from services.identity.service import IdentityService
    from services.identity.storage import Membership, User

    service = IdentityService()
    service.db = migrated("identity", tmp_path / "identity.db", storage.metadata)
    service.rbac = rbac
    with service.db.unit_of_work() as uow:
        for user_id, tenants in {"root-1": ["default"], **rbac.identity.tenants}.items():
            user = User(id=user_id, username=user_id.replace("-", ""), first_name="F", last_name="L",
                        email=f"{user_id}@example.com", status="active", uid_number=None,
                        is_first_admin=user_id == "root-1")
            from kernel.envelope import utc_now
            user.created_at = utc_now()
            user.refresh_search_text()
            uow.session.add(user)
            uow.session.flush()
            for tenant in tenants:
                uow.session.add(Membership(user_id=user_id, tenant_id=tenant, member=True, is_default=False,
                                           confirmed=True, as_of=utc_now().isoformat()))
        uow.commit()
    yield service
    service.db.dispose()


def test_identity_refuses_account_actions_beyond_the_actors_reach(identity):
    adm1 = Actor(user_id="adm1", username="adm1").__dict__
    refusal(lambda: identity.admin_reset_password(adm1, "root-1", "random"))
    refusal(lambda: identity.update_user(adm1, "root-1", {"email": "mine@example.com"}, tenant_id="t1"))
    refusal(lambda: identity.update_user(adm1, "two", {"status": "suspended"}, tenant_id="t1"))
    refusal(lambda: identity.remove_user(adm1, "adm2"))
    refusal(lambda: identity.revoke_sessions(adm1, "root-1", "admin"))
    refusal(lambda: identity.unlock_account(adm1, "two"))
    assert identity.get_user("root-1")["email"] == "root-1@example.com"
    # within reach
    identity.update_user(adm1, "op1", {"first_name": "Olga"}, tenant_id="t1")
    identity.revoke_sessions(adm1, "op1", "admin")
    assert identity.admin_reset_password(adm1, "op1", "random")["password"]


def test_identity_asks_the_routes_own_permission_before_anything(identity):
    """The 2FA row actions are super admins' (their routes' x-permission), even on a user within reach;
    creating a user or an invitation needs admin.users in the tenant given; unknown ids are refused alike."""
    adm1, op1 = (Actor(user_id=user, username=user).__dict__ for user in ("adm1", "op1"))
    for target in ("op1", "no-such-user"):
        for call in (lambda: identity.require_two_factor(adm1, target, "t1"),
                     lambda: identity.cancel_two_factor_requirement(adm1, target, "t1"),
                     lambda: identity.admin_disable_two_factor(adm1, target, "t1")):
            with pytest.raises(Forbidden) as refused:
                call()
            assert refused.value.code == "super_admin_only"
    for actor, tenant in ((adm1, "t2"), (op1, "t1")):
        for call in (lambda: identity.create_user(actor, "newbie", "newbie@example.com", "N", "B", tenant_id=tenant),
                     lambda: identity.create_invitations(actor, "newbie@example.com", "viewer", tenant),
                     lambda: identity.revoke_invitation(actor, "00000000-0000-0000-0000-000000000000", tenant)):
            with pytest.raises(Forbidden) as refused:
                call()
            assert (refused.value.code, refused.value.details) == (
                "permission_denied", {"permission": "admin.users", "tenant_id": tenant})
    with pytest.raises(ValidationFailed):
        identity.create_user(adm1, "newbie", "newbie@example.com", "N", "B", tenant_id=None)
    assert identity.list_users(tenant_id=None, q="newbie")["items"] == []
    assert identity.require_two_factor(ROOT, "op1", "t1")["totp_required"] is True
    assert identity.create_user(adm1, "newbie", "newbie@example.com", "N", "B", tenant_id="t1")["password"]


def test_the_operator_cli_and_super_admins_act_on_anyone(identity):
    cli = Actor(username="cli").__dict__
    assert identity.admin_reset_password(cli, "root-1", "random")["password"]
    identity.unlock_account(cli, "root-1")
    identity.update_user(ROOT, "adm2", {"first_name": "Ann"}, tenant_id="default")


def test_platform_settings_refuse_tenant_admins_and_anonymous_callers(identity):
    for actor in (Actor(user_id="adm1", username="adm1"), Actor(), Actor(username="system")):
        for call in (lambda a: identity.put_smtp_settings(a, {"host": "evil.example.com", "port": 25}),
                     lambda a: identity.delete_smtp_settings(a),
                     lambda a: identity.put_password_policy(a, {"min_length": 8, "refuse_common": False}),
                     lambda a: identity.put_two_factor_policy(a, True),
                     lambda a: identity.put_registration_settings(a, {"self_registration": False}),
                     lambda a: identity.send_test_mail(a, "someone@example.com")):
            with pytest.raises(Forbidden) as refused:
                call(actor.__dict__)
            assert refused.value.code == "super_admin_only"
    assert identity.get_password_policy()["min_length"] == 12
    assert identity.put_password_policy(ROOT, {"min_length": 14})["min_length"] == 14
    assert identity.put_password_policy(Actor(username="cli").__dict__, {"min_length": 12})["min_length"] == 12


def test_tenancy_refuses_to_pull_a_user_out_of_reach_into_a_tenant(tmp_path, rbac):
    from services.tenancy import storage
    from services.tenancy.service import TenancyService

    service = TenancyService()
    service.db = migrated("tenancy", tmp_path / "tenancy.db", storage.metadata)
    service.config = {"GATEHOUSE": Config.from_env({"GATEHOUSE_SECRET_KEY": "k", "GATEHOUSE_DATA_DIR": str(tmp_path)})}
    service.rbac = rbac
    try:
        adm1 = Actor(user_id="adm1", username="adm1").__dict__
        with pytest.raises(Forbidden) as refused:
            service.enable(adm1)
        assert refused.value.code == "super_admin_only"
        service.enable(ROOT)
        one = service.create_tenant(ROOT, "One")["id"]
        rbac.assign_role(ROOT, "adm1", ADMIN, one)
        for user_id in ("root-1", "op1", "two"):  # members of `one` already: only authority decides
            service.assign_user(ROOT, one, user_id, user_id, None)
        refusal(lambda: service.assign_user(adm1, one, "root-1", "root", VIEWER))  # a super admin
        service.assign_user(adm1, one, "op1", "op1", VIEWER)  # t1 and one, both adm1's
        refusal(lambda: service.remove_user(adm1, one, "two"))  # viewer in t2 too (rbac)
        assert service.is_member("two", one)
    finally:
        service.db.dispose()


# --- the migration: stored custom roles lose admin.settings ----------------------------------------------


def test_the_migration_drops_admin_settings_from_stored_custom_roles(tmp_path):
    import sqlalchemy as sa
    from alembic import command

    from kernel.migrate import _alembic

    url = f"sqlite:///{tmp_path / 'rbac.db'}"
    cfg = _alembic("rbac", url)
    try:
        command.upgrade(cfg, "bb56e186b39f")  # the revision before
        engine = cfg.attributes["engine"]
        roles = sa.table("rbac_roles", sa.column("id"), sa.column("name"), sa.column("tenant_id"),
                         sa.column("description"), sa.column("permissions", sa.JSON), sa.column("created_at"),
                         sa.column("updated_at"), sa.column("version"))
        now = "2026-12-01 00:00:00"
        with engine.begin() as conn:
            for role_id, permissions in (("r1", ["admin.settings", "vm.view"]), ("r2", ["vm.view"]),
                                         ("r3", ["admin.settings"])):
                conn.execute(roles.insert().values(id=role_id, name=role_id, tenant_id="t1", description="",
                                                   permissions=permissions, created_at=now, updated_at=now,
                                                   version=3))
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            stored = {row.id: (row.permissions, row.version)
                      for row in conn.execute(sa.select(roles.c.id, roles.c.permissions, roles.c.version))}
    finally:
        cfg.attributes["engine"].dispose()
    assert stored == {"r1": (["vm.view"], 4), "r2": (["vm.view"], 3), "r3": ([], 4)}


# --- scopes, invitations, self-service (the review of issue 17's merge) --------------------------------


def test_a_scoped_admin_grants_nothing_wider_than_their_own_scope(rbac):
    rbac.assign_role(ROOT, "adm1b", ADMIN, "t1", scope={"connections": ["c1"]})
    scoped = Actor(user_id="adm1b", username="adm1b").__dict__
    rbac.enrol_new_user(user_event("fresh"))
    rbac.identity.join("fresh", "t1")
    for who, scope in (("adm1b", {}), ("fresh", {}), ("fresh", {"connections": ["c1", "c2"]})):
        with pytest.raises(Forbidden) as wider:
            rbac.assign_role(scoped, who, ADMIN if who == "adm1b" else VIEWER, "t1", scope=scope)
        assert wider.value.code == "escalation" and "scope" in wider.value.details
    assert rbac.scope_of("adm1b", "t1")["connections"] == ["c1"]
    rbac.assign_role(scoped, "fresh", VIEWER, "t1", scope={"connections": ["c1"]})  # within it
    rbac.assign_role(ROOT, "fresh", OPERATOR, "t1")  # no scope given: the user keeps theirs
    assert rbac.scope_of("fresh", "t1")["connections"] == ["c1"]
    with pytest.raises(Forbidden):
        rbac.check_assignable("adm1b", VIEWER, "t1", {})  # e.g. a new member of a tenant, unscoped there


def test_identity_refuses_an_invitation_to_a_role_beyond_the_inviter(identity):
    adm1 = Actor(user_id="adm1", username="adm1").__dict__
    with pytest.raises(Forbidden):
        identity.create_invitations(adm1, ["new@example.com"], "super_admin", "t1")
    with pytest.raises(Forbidden) as refused:
        identity.create_user(adm1, "sneaky", "sneaky@example.com", "S", "N", tenant_id="t1", super_admin=True)
    assert refused.value.code == "super_admin_only"


def test_users_change_their_own_names_only_through_their_session(identity):
    with pytest.raises(ValidationFailed):
        identity.update_own_names(Actor(user_id="op1").__dict__, "no-such-session", {"email": "x@example.com"})
    with pytest.raises(Exception) as unknown_session:
        identity.update_own_names(Actor(user_id="op1").__dict__, "no-such-session", {"first_name": "Olga"})
    assert getattr(unknown_session.value, "code", None) == "session_invalid"
