"""The authority rule through the real gateway and straight at the services (issue 17, reproductions 1, 2
and 6; docs/security.md): nobody acts on an account or a setting above their own reach.

Destructive attempts aim at a second super admin, never at the first one (rootadmin): on code without the
rule they would succeed and break every later test of the shared platform.
"""
import pytest

from kernel.envelope import Actor
from kernel.errors import Forbidden, NotFound, ValidationFailed
from ops.operator import cli_actor
from tests.harness import PASSWORD, eventually
from tests.integration.test_isolation import switched, user_in
from tests.integration.test_rbac import assign, create_role, error_of, rpc  # noqa: F401 - rpc: a fixture
from tests.integration.test_connections import body as connection_body
from tests.integration.test_tenancy import DEFAULT, make_user, member, new_tenant, role_becomes

USERS = "/api/v1/users"


@pytest.fixture(scope="module")
def root(platform):
    return platform.admin()


def super_admin(platform, root, name):
    """A second super admin (rbac's super_admin role in default), signed in."""
    user, api = make_user(platform, root, name)
    assert assign(root, user["id"], "super_admin").status_code == 200
    eventually(lambda: api.get("/api/v1/me/permissions").json()["super_admin"], 20, 0.2, "super admin")
    return user, api


def actor_of(user) -> dict:
    return Actor(user_id=user["id"], username=user["username"]).__dict__


def outside(response):
    return error_of(response, 403, "outside_authority")


# --- reproduction 1: tenant admins took over super admins and stronger accounts --------------------------


def test_a_tenant_admin_cannot_take_over_a_super_admin(platform, root, mailbox, unique):
    assert root.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    boss, boss_api = super_admin(platform, root, f"sa{unique}")
    first_admin = root.get("/api/v1/me").json()
    _, tenant_admin = make_user(platform, root, f"ta{unique}", role="admin")
    target = f"{USERS}/{boss['id']}"

    outside(tenant_admin.post(f"{target}/password-reset", json={"method": "random"}))
    outside(tenant_admin.post(f"{target}/password-reset", json={"method": "email"}))
    outside(tenant_admin.post(f"{USERS}/{first_admin['id']}/password-reset", json={"method": "email"}))
    outside(tenant_admin.patch(target, json={"email": f"attacker{unique}@example.com"}))
    outside(tenant_admin.patch(f"{USERS}/{first_admin['id']}", json={"first_name": "Owned"}))
    outside(tenant_admin.patch(target, json={"status": "suspended"}))
    outside(tenant_admin.delete(f"{target}/sessions"))
    outside(tenant_admin.post(f"{target}/unlock"))
    outside(tenant_admin.delete(target))
    outside(tenant_admin.put(f"{target}/roles/{DEFAULT}", json={"role": "viewer", "scope": {}}))
    assert not mailbox.messages_to(boss["email"]) and not mailbox.messages_to(first_admin["email"])

    # the self-service reset still goes to the super admin's own address: the email never changed
    assert platform.api().post("/api/v1/auth/password-reset", json={"email": f"attacker{unique}@example.com"}
                               ).status_code == 202
    assert root.get(target).json()["email"] == boss["email"] and root.get(target).json()["status"] == "active"
    assert root.get(f"{USERS}/{first_admin['id']}").json()["first_name"] == first_admin["first_name"]
    assert boss_api.get("/api/v1/me").status_code == 200  # their session lives on
    assert platform.api().login(boss["username"], PASSWORD).get("/api/v1/me").status_code == 200


def test_a_custom_role_cannot_act_on_an_account_holding_more(platform, root, unique):
    helpdesk = create_role(root, f"helpdesk-{unique}", ["admin.users", "admin.rbac", "vm.view"]).json()
    _, desk = make_user(platform, root, f"hd{unique}", role=helpdesk["name"])
    stronger, stronger_api = make_user(platform, root, f"st{unique}", role="admin")
    weaker, _ = make_user(platform, root, f"we{unique}")  # no role: holds nothing
    target = f"{USERS}/{stronger['id']}"
    refused = outside(desk.post(f"{target}/password-reset", json={"method": "random"}))
    assert "vm.start" in refused["details"]["permissions"] and refused["details"]["user_id"] == stronger["id"]
    outside(desk.patch(target, json={"status": "suspended"}))
    outside(desk.delete(f"{target}/sessions"))
    outside(desk.put(f"{target}/roles/{DEFAULT}", json={"role": "viewer", "scope": {}}))
    team = root.post("/api/v1/groups", json={"cn": f"team{unique}"})  # default's, like the three users
    assert team.status_code == 201, team.text
    added = root.post(f"/api/v1/groups/{team.json()['id']}/members", json={"user_id": stronger["id"]})
    assert added.status_code == 201, added.text
    outside(desk.delete(f"/api/v1/groups/{team.json()['id']}/members/{stronger['id']}"))
    assert stronger_api.get("/api/v1/me").status_code == 200
    # within reach: an account holding nothing the helpdesk lacks
    assert desk.post(f"{USERS}/{weaker['id']}/password-reset", json={"method": "random"}).status_code == 200
    # admin.rbac without admin.users reaches nobody's account
    rbac_only = create_role(root, f"rbaconly-{unique}", ["admin.rbac", "vm.view"]).json()
    _, delegate = make_user(platform, root, f"ro{unique}", role=rbac_only["name"])
    outside(assign(delegate, weaker["id"], "viewer"))


def test_a_tenant_admin_cannot_pull_another_tenants_admin_into_their_tenant(platform, root, unique):
    ours, theirs = new_tenant(root, f"Auth A {unique}"), new_tenant(root, f"Auth B {unique}")
    boss, boss_api = user_in(platform, root, ours["id"], f"aa{unique}", "admin")
    rival, _ = user_in(platform, root, theirs["id"], f"ab{unique}", "admin")
    both, _ = user_in(platform, root, ours["id"], f"ac{unique}", "viewer")
    assert member(root, theirs["id"], both["id"], "viewer").status_code == 201
    role_becomes(root, both["id"], theirs["id"], "viewer")
    switched(boss_api, ours["id"])
    assert member(boss_api, ours["id"], rival["id"], "viewer").status_code in (403, 404)
    assert member(boss_api, ours["id"], both["id"], "operator").status_code == 403
    assert boss_api.delete(f"/api/v1/tenants/{ours['id']}/users/{both['id']}").status_code == 403
    assert member(boss_api, ours["id"], boss["id"], "admin").status_code == 200  # themselves, same role


def test_the_services_refuse_on_their_own(platform, root, rpc, unique):
    """Straight at identity, rbac and tenancy over the broker, as if the gateway had let it through."""
    boss, _ = super_admin(platform, root, f"sr{unique}")
    tenant_admin, _ = make_user(platform, root, f"tr{unique}", role="admin")
    viewer, _ = make_user(platform, root, f"vr{unique}", role="viewer")
    actor = actor_of(tenant_admin)
    calls = (lambda: rpc.identity.admin_reset_password(actor, boss["id"], "random"),
             lambda: rpc.identity.update_user(actor, boss["id"], {"email": f"x{unique}@example.com"}),
             lambda: rpc.identity.update_user(actor, boss["id"], {"status": "suspended"}),
             lambda: rpc.identity.remove_user(actor, boss["id"]),
             lambda: rpc.identity.revoke_sessions(actor, boss["id"], "admin"),
             lambda: rpc.identity.unlock_account(actor, boss["id"]),
             lambda: rpc.rbac.assign_role(actor, boss["id"], "viewer", DEFAULT),
             lambda: rpc.rbac.check_authority(tenant_admin["id"], boss["id"], [DEFAULT]),
             lambda: rpc.tenancy.remove_user(actor, DEFAULT, boss["id"]))
    for call in calls:
        with pytest.raises(Forbidden) as refused:
            call()
        assert refused.value.code == "outside_authority", call
    for call in (lambda: rpc.identity.require_two_factor(actor, boss["id"], DEFAULT),  # super admins' alone
                 lambda: rpc.identity.admin_disable_two_factor(actor, boss["id"], DEFAULT)):
        refused_with("super_admin_only", call)
    assert rpc.identity.get_user(boss["id"])["status"] == "active"
    rpc.rbac.check_authority(tenant_admin["id"], viewer["id"], [DEFAULT])  # within reach: no error
    rpc.rbac.check_authority(boss["id"], tenant_admin["id"], [])


def refused_with(code, call):
    with pytest.raises(Forbidden) as refusal:
        call()
    assert refusal.value.code == code, (code, refusal.value.code, refusal.value.message)
    return refusal.value


def test_each_routes_permission_is_asked_again_in_the_service(platform, root, rpc, unique):
    """Straight at identity, audit, tenancy and proxmox_sync over the broker, as if the gateway had let the
    call through: the route's own permission (x-permission) in the tenant given, super admin where the
    route says so, asked before any lookup (an unknown id is refused alike). As a viewer of T1 in T1, and
    as an admin of T1 passing T2's tenant id."""
    ours, theirs = new_tenant(root, f"Svc A {unique}"), new_tenant(root, f"Svc B {unique}")
    viewer, _ = user_in(platform, root, ours["id"], f"sv{unique}", "viewer")
    boss, _ = user_in(platform, root, ours["id"], f"sb{unique}", "admin")
    connection = rpc.tenancy.create_connection(cli_actor(), theirs["id"], connection_body(f"svc-{unique}"))
    forwarding = root.get("/api/v1/settings/audit-forwarding").json()
    name = f"sn{unique}"

    for actor, tenant_id in ((actor_of(viewer), ours["id"]), (actor_of(boss), theirs["id"])):
        for connection_id in (connection["id"], "no-such-connection"):
            for call in (
                    lambda: rpc.tenancy.update_connection(actor, connection_id, {"name": "taken"}, tenant_id),
                    lambda: rpc.tenancy.update_connection(actor, connection_id, {"name": "taken"}),  # every tenant
                    lambda: rpc.tenancy.delete_connection(actor, connection_id, tenant_id),
                    lambda: rpc.tenancy.delete_connection(actor, connection_id),
                    lambda: rpc.proxmox_sync.test_connection(actor, connection_id, tenant_id),
                    lambda: rpc.proxmox_sync.test_connection(actor, connection_id),
                    lambda: rpc.proxmox_sync.configure_realm(actor, connection_id, tenant_id)):
                refusal = refused_with("permission_denied", call)
                assert refusal.details["permission"] in ("connection.manage", "super_admin"), refusal.details
        for call in (
                lambda: rpc.identity.create_user(actor, name, f"{name}@example.com", "S", "N", tenant_id=tenant_id),
                lambda: rpc.identity.create_invitations(actor, f"{name}@example.com", "viewer", tenant_id),
                lambda: rpc.tenancy.create_connection(actor, tenant_id, connection_body(f"sc-{unique}")),
                lambda: rpc.tenancy.update_tenant(actor, tenant_id, {"description": "taken over"}),
                lambda: rpc.proxmox_sync.request_sync(actor, None, tenant_id),
                lambda: rpc.rbac.create_group(actor, f"sg{unique}", tenant_id=tenant_id)):
            refusal = refused_with("permission_denied", call)
            assert refusal.details["tenant_id"] == tenant_id, refusal.details
        for target in (viewer["id"], "no-such-user"):  # an unknown user answers as a known one
            refusal = refused_with("outside_authority", lambda: rpc.rbac.assign_role(actor, target, "admin", tenant_id))
            assert refusal.details == {"user_id": target, "reason": "not_administered"}
        for call in (
                lambda: rpc.identity.require_two_factor(actor, viewer["id"], ours["id"]),
                lambda: rpc.identity.cancel_two_factor_requirement(actor, viewer["id"], ours["id"]),
                lambda: rpc.identity.admin_disable_two_factor(actor, viewer["id"], ours["id"]),
                lambda: rpc.identity.require_two_factor(actor, "no-such-user", ours["id"]),
                lambda: rpc.audit.get_forwarding(actor),
                lambda: rpc.audit.put_forwarding(actor, {"enabled": True, "host": "127.0.0.2", "port": 514}),
                lambda: rpc.tenancy.reassign_connection(actor, connection["id"], ours["id"]),
                lambda: rpc.tenancy.create_tenant(actor, f"Svc C {unique}"),
                lambda: rpc.tenancy.delete_tenant(actor, theirs["id"]),
                lambda: rpc.tenancy.adopt_users(actor, [{"id": viewer["id"], "username": viewer["username"]}])):
            refused_with("super_admin_only", call)

    # a tenant is required where something is made in one
    boss_actor = actor_of(boss)
    for call in (lambda: rpc.tenancy.create_connection(boss_actor, None, connection_body(f"sc-{unique}")),
                 lambda: rpc.identity.create_user(boss_actor, name, f"{name}@example.com", "S", "N", tenant_id=None)):
        with pytest.raises(ValidationFailed):
            call()
    # within their permission in T1, another tenant's connection is no connection of theirs
    for call in (lambda: rpc.tenancy.update_connection(boss_actor, connection["id"], {"name": "taken"}, ours["id"]),
                 lambda: rpc.tenancy.delete_connection(boss_actor, connection["id"], ours["id"]),
                 lambda: rpc.proxmox_sync.test_connection(boss_actor, connection["id"], ours["id"]),
                 lambda: rpc.proxmox_sync.configure_realm(boss_actor, connection["id"], ours["id"])):
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.code == "connection_not_found"

    # nothing changed
    assert rpc.tenancy.get_connection(connection["id"]) == connection
    assert rpc.tenancy.get_tenant(theirs["id"])["description"] == theirs["description"]
    assert rpc.tenancy.get_tenant(ours["id"])["description"] == ours["description"]
    assert rpc.identity.list_users(tenant_id=None, q=name)["items"] == []
    assert root.get("/api/v1/settings/audit-forwarding").json() == forwarding
    assert rpc.identity.get_user(viewer["id"], ours["id"])["totp_required"] is False
    # and what the permission covers still works, straight at the service too
    mine = rpc.tenancy.create_connection(boss_actor, ours["id"], connection_body(f"mine-{unique}"))
    rpc.tenancy.delete_connection(boss_actor, mine["id"], ours["id"])
    rpc.tenancy.update_connection(actor_of(root.get("/api/v1/me").json()), connection["id"], {"name": f"svc2-{unique}"})


def test_reach_covers_reading_sessions_and_handling_invitations(platform, root, rpc, mailbox, unique):
    """Another user's sessions (addresses, devices) are read only within authority over them; an
    invitation is resent or revoked only by someone who could have sent it (its role)."""
    assert root.put("/api/v1/settings/smtp", json=mailbox.smtp_settings()).status_code == 200
    boss, _ = super_admin(platform, root, f"ss{unique}")
    tenant_admin, tenant_admin_api = make_user(platform, root, f"ti{unique}", role="admin")
    viewer, _ = make_user(platform, root, f"vi{unique}", role="viewer")

    outside(tenant_admin_api.get(f"{USERS}/{boss['id']}/sessions"))
    assert tenant_admin_api.get(f"{USERS}/{viewer['id']}/sessions").status_code == 200
    with pytest.raises(Forbidden) as refused:
        rpc.identity.list_sessions(actor_of(tenant_admin), boss["id"])
    assert refused.value.code == "outside_authority"

    sent = root.post("/api/v1/invitations", json={"emails": f"sa-to-be{unique}@example.com", "role": "super_admin"})
    assert sent.status_code == 201, sent.text
    [invitation] = sent.json()["items"]
    for response in (tenant_admin_api.post(f"/api/v1/invitations/{invitation['id']}/resend"),
                     tenant_admin_api.delete(f"/api/v1/invitations/{invitation['id']}")):
        assert response.status_code == 403, response.text
    assert root.get(f"/api/v1/invitations/{invitation['id']}").json()["status"] == "pending"
    ours = tenant_admin_api.post("/api/v1/invitations", json={"emails": f"op{unique}@example.com", "role": "operator"})
    assert ours.status_code == 201, ours.text
    assert tenant_admin_api.delete(f"/api/v1/invitations/{ours.json()['items'][0]['id']}").status_code == 204


def test_roles_and_groups_are_changed_only_with_admin_rbac_in_the_service(platform, root, rpc, unique):
    """Straight at rbac over the broker, as if the gateway had let a viewer through."""
    viewer, _ = make_user(platform, root, f"vg{unique}", role="viewer")
    actor = actor_of(viewer)
    group = root.post("/api/v1/groups", json={"cn": f"g{unique}"}).json()
    role = create_role(root, f"r{unique}", ["vm.view"]).json()
    calls = (lambda: rpc.rbac.create_role(actor, f"x{unique}", ["vm.view"]),
             lambda: rpc.rbac.update_role(actor, role["id"], DEFAULT, "taken over"),
             lambda: rpc.rbac.delete_role(actor, role["id"]),
             lambda: rpc.rbac.create_group(actor, f"x{unique}"),
             lambda: rpc.rbac.next_gid(actor),
             lambda: rpc.rbac.update_group(actor, group["id"], {"description": "taken over"}),
             lambda: rpc.rbac.delete_group(actor, group["id"]),
             lambda: rpc.rbac.add_member(actor, group["id"], viewer["id"], viewer["username"]))
    for call in calls:
        with pytest.raises(Forbidden) as refused:
            call()
        assert refused.value.code == "permission_denied", call
    assert root.get(f"/api/v1/groups/{group['id']}").json()["description"] == ""
    assert root.get(f"/api/v1/roles/{role['id']}").json()["description"] == ""


# --- reproduction 2: platform settings are super admins' alone --------------------------------------------


def test_tenant_admins_cannot_change_platform_settings(platform, root, rpc, mailbox, unique):
    _, tenant_admin = make_user(platform, root, f"ts{unique}", role="admin")
    me = tenant_admin.get("/api/v1/me").json()
    assert "admin.settings" not in tenant_admin.get("/api/v1/me/permissions").json()["permissions"]
    for response in (tenant_admin.put("/api/v1/settings/smtp", json=mailbox.smtp_settings(host="127.0.0.2")),
                     tenant_admin.get("/api/v1/settings/smtp"),
                     tenant_admin.delete("/api/v1/settings/smtp"),
                     tenant_admin.put("/api/v1/settings/password-policy",
                                      json={"min_length": 8, "refuse_common": False}),
                     tenant_admin.get("/api/v1/settings/password-policy"),
                     tenant_admin.put("/api/v1/settings/2fa-policy", json={"require_for_super_admin": False}),
                     tenant_admin.get("/api/v1/settings/ldap"),
                     tenant_admin.post("/api/v1/tenancy/enable")):
        error_of(response, 403, "permission_denied")
    # the services themselves
    actor = actor_of(me)
    for call in (lambda: rpc.identity.put_smtp_settings(actor, mailbox.smtp_settings(host="127.0.0.2")),
                 lambda: rpc.identity.delete_smtp_settings(actor),
                 lambda: rpc.identity.put_password_policy(actor, {"min_length": 8, "refuse_common": False}),
                 lambda: rpc.identity.put_two_factor_policy(actor, False),
                 lambda: rpc.proxmox_sync.put_directory_settings(actor, {"url": "ldap://127.0.0.2:1"}),
                 lambda: rpc.tenancy.enable(actor)):
        with pytest.raises(Forbidden) as refused:
            call()
        assert refused.value.code == "super_admin_only"
    assert root.get("/api/v1/settings/password-policy").json()["min_length"] >= 12
    assert root.get("/api/v1/settings/smtp").json()["host"] != "127.0.0.2"


def test_no_role_can_hold_admin_settings(root, unique):
    refused = error_of(create_role(root, f"settings-{unique}", ["admin.settings", "vm.view"]), 422,
                       "validation_error")
    assert "admin.settings" in refused["details"]["permissions"]
    spec = root.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/settings/smtp", "/api/v1/settings/password-policy"):
        assert {op["x-permission"] for op in spec["paths"][path].values() if "x-permission" in op} == {"super_admin"}


# --- reproduction 6: suspension and removal end sessions for good ----------------------------------------


def test_suspension_ends_every_session_and_refresh_token_for_good(platform, root, unique):
    name = f"su{unique}"
    user, session = platform.create_user(name, admin=root)
    assert session.get("/api/v1/me").status_code == 200
    assert root.patch(f"{USERS}/{user['id']}", json={"status": "suspended"}).status_code == 200
    eventually(lambda: session.get("/api/v1/me").status_code == 401, 10, message="suspended session refused")
    assert root.patch(f"{USERS}/{user['id']}", json={"status": "active"}).status_code == 200

    assert session.get("/api/v1/me").status_code == 401  # the old access token stays refused
    refreshed = platform.api().post("/api/v1/auth/refresh", json={"refresh_token": session.refresh_token})
    assert refreshed.status_code == 401, refreshed.text  # and so does the old refresh token
    assert platform.api().login(name, PASSWORD).get("/api/v1/me").status_code == 200  # a new sign-in works
    assert session.get("/api/v1/me").status_code == 401


def test_removal_ends_every_session_and_refresh_token(platform, root, unique):
    user, session = platform.create_user(f"rm{unique}", admin=root)
    assert root.delete(f"{USERS}/{user['id']}").status_code == 204
    eventually(lambda: session.get("/api/v1/me").status_code == 401, 10, message="removed session refused")
    refreshed = platform.api().post("/api/v1/auth/refresh", json={"refresh_token": session.refresh_token})
    assert refreshed.status_code == 401, refreshed.text


def test_a_scoped_admin_widens_no_scope_and_creates_nobody_unscoped(platform, root, unique):
    scope = {"connections": [f"conn-{unique}"]}
    boss, boss_api = make_user(platform, root, f"sc{unique}", role="admin")
    assert assign(root, boss["id"], "admin", scope).status_code == 200
    eventually(lambda: boss_api.get("/api/v1/me/permissions").json()["scope"]["connections"] == scope["connections"],
               20, 0.2, "the scope reaches the gateway")
    error_of(assign(boss_api, boss["id"], "admin", {}), 403, "escalation")  # their own scope
    name = f"sn{unique}"
    created = boss_api.post("/api/v1/users", json={"username": name, "email": f"{name}@example.com",
                                                   "first_name": "S", "last_name": "N", "role": "viewer"})
    error_of(created, 403, "escalation")  # a new user would be unscoped
    assert root.get("/api/v1/users", params={"q": name}).json()["items"] == []  # refused before anything changed
    assert boss_api.get("/api/v1/me/permissions").json()["scope"]["connections"] == scope["connections"]
