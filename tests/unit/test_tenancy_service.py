"""The tenancy service's entrypoints on a migrated SQLite database, without a broker: what they
store, what they refuse, and the events they leave in the outbox."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from kernel.config import Config
from kernel.envelope import SYSTEM, Actor, Event, Resource
from kernel.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed
from services.identity import events as identity_events
from services.tenancy import storage
from services.tenancy.service import TenancyService
from tests.unit.conftest import AllowingRbac, migrated

ADMIN = Actor(user_id="admin-1", username="root").__dict__
TOKEN = {"token_id": "gatehouse@pve!sync", "token_secret": "the-token-secret"}


class FakeRbac(AllowingRbac):
    """rbac's answers the takeover rule asks for: super admins, and who holds admin.users where; the
    authority checks (kernel/authority.py) let everyone through (tests/unit/test_authority.py has those)."""

    def __init__(self):
        super().__init__()
        self.super_admins = {ADMIN["user_id"]}
        self.admin_users = set()  # (user_id, tenant_id)

    def authorize(self, user_id, permission, tenant_id="default", resource=None):
        if user_id in self.super_admins:  # as rbac answers: a super admin holds every permission everywhere
            return True
        return permission in ("admin.users", "connection.manage") and (user_id, tenant_id) in self.admin_users


@pytest.fixture
def tenancy(tmp_path):
    service = TenancyService()
    service.rbac = FakeRbac()
    service.db = migrated("tenancy", tmp_path / "tenancy.db", storage.metadata)
    service.config = {"GATEHOUSE": Config.from_env({"GATEHOUSE_SECRET_KEY": "unit-test-key",
                                                    "GATEHOUSE_DATA_DIR": str(tmp_path)})}
    yield service
    service.db.dispose()


def emitted(service, type_=None) -> list[dict]:
    outbox = service.db.outbox
    with service.db.engine.connect() as conn:
        bodies = [json.loads(row.body) for row in conn.execute(sa.select(outbox.c.body).order_by(outbox.c.seq))]
    return [body for body in bodies if type_ is None or body["type"] == type_]


def user_event(type_, user_id, username, tenant_ids=(), **data) -> dict:
    return Event(type=type_, source="identity", category="users", actor=SYSTEM,
                 resource=Resource("user", user_id, username), data={"username": username, **data},
                 tenant_ids=tenant_ids).to_dict()


def new_user(service, user_id, username="u"):
    service.enrol_new_user(user_event(identity_events.USER_CREATED, user_id, username))


def enabled_with_tenant(service, name="Acme") -> dict:
    service.enable(ADMIN)
    return service.create_tenant(ADMIN, name, "first customer")


# --- the switch and tenants -------------------------------------------------------------------------------


def test_it_starts_disabled_with_the_default_tenant_only(tenancy):
    assert tenancy.status() == {"enabled": False, "tenants": 1, "changed_at": None, "changed_by": None}
    assert tenancy.get_tenant("default")["is_default"] is True
    with pytest.raises(Conflict) as refused:
        tenancy.create_tenant(ADMIN, "Acme")
    assert refused.value.code == "multi_tenancy_disabled"


def test_enabling_is_idempotent_and_counts_what_default_holds(tenancy):
    new_user(tenancy, "u1")
    tenancy.create_connection(ADMIN, "default", {"name": "pve1", "url": "https://pve1", "auth": TOKEN})
    assert tenancy.enable(ADMIN)["enabled"] is True
    assert tenancy.enable(ADMIN)["changed_by"] == "root"
    [event] = emitted(tenancy, "tenancy.multi_tenancy_enabled")
    assert event["data"] == {"default_tenant": {"connections": 1, "users": 1}}
    assert event["tenant_ids"] == ["default"]


def test_disabling_is_refused_while_other_tenants_exist(tenancy):
    acme = enabled_with_tenant(tenancy)
    with pytest.raises(Conflict) as refused:
        tenancy.disable(ADMIN)
    assert refused.value.code == "tenants_exist"
    tenancy.delete_tenant(ADMIN, acme["id"])
    assert tenancy.disable(ADMIN)["enabled"] is False
    assert len(emitted(tenancy, "tenancy.multi_tenancy_disabled")) == 1


def test_tenant_names_are_unique_whatever_the_case(tenancy):
    enabled_with_tenant(tenancy, "Acme")
    with pytest.raises(Conflict) as refused:
        tenancy.create_tenant(ADMIN, " ACME ")
    assert refused.value.code == "tenant_exists"
    with pytest.raises(Conflict):
        tenancy.create_tenant(ADMIN, "default")  # the default tenant's name is taken too
    with pytest.raises(ValidationFailed) as invalid:
        tenancy.create_tenant(ADMIN, "x" * 65)
    assert "name" in invalid.value.details


def test_renaming_bumps_the_version_and_checks_it(tenancy):
    acme = enabled_with_tenant(tenancy)
    renamed = tenancy.update_tenant(ADMIN, acme["id"], {"name": "Acme Corp"}, expected_version=1)
    assert renamed["name"] == "Acme Corp" and renamed["version"] == 2
    with pytest.raises(PreconditionFailed):
        tenancy.update_tenant(ADMIN, acme["id"], {"description": "again"}, expected_version=1)
    unchanged = tenancy.update_tenant(ADMIN, acme["id"], {"name": "Acme Corp"})
    assert unchanged["version"] == 2
    [event] = emitted(tenancy, "tenancy.tenant_updated")
    assert event["data"]["changes"] == {"name": {"from": "Acme", "to": "Acme Corp"}}


def test_deleting_a_tenant_ends_its_memberships_and_spares_default(tenancy):
    acme = enabled_with_tenant(tenancy)
    new_user(tenancy, "u1")
    tenancy.assign_user(ADMIN, acme["id"], "u1", "u", role="viewer")
    connection = tenancy.create_connection(ADMIN, acme["id"], {"name": "pve1", "url": "https://pve1", "auth": TOKEN})
    with pytest.raises(Conflict) as refused:
        tenancy.delete_tenant(ADMIN, acme["id"])
    assert refused.value.code == "tenant_has_connections" and refused.value.details == {"connections": 1}
    tenancy.delete_connection(ADMIN, connection["id"])
    tenancy.delete_tenant(ADMIN, acme["id"])
    assert tenancy.memberships_of("u1") == [{"tenant_id": "default", "tenant_name": "Default", "is_default": True}]
    [removed] = emitted(tenancy, "tenancy.user_removed_from_tenant")
    assert removed["data"]["reason"] == "tenant_deleted" and removed["tenant_ids"] == [acme["id"]]
    assert emitted(tenancy)[-1]["type"] == "tenancy.tenant_deleted"
    with pytest.raises(Conflict) as protected:
        tenancy.delete_tenant(ADMIN, "default")
    assert protected.value.code == "default_tenant_protected"
    with pytest.raises(NotFound):
        tenancy.get_tenant(acme["id"])


# --- connections --------------------------------------------------------------------------------------


def test_connection_secrets_are_sealed_and_never_shown(tenancy):
    created = tenancy.create_connection(ADMIN, "default", {"name": "pve1", "url": "https://PVE1.example.com",
                                                           "auth": TOKEN})
    assert created["url"] == "https://pve1.example.com:8006" and created["realm"] == "gatehouse"
    assert created["auth"] == {"method": "token", "token_id": "gatehouse@pve!sync", "secret_set": True}
    assert "the-token-secret" not in json.dumps(created)
    assert "the-token-secret" not in json.dumps(emitted(tenancy))
    with tenancy.db.engine.connect() as conn:
        stored = conn.execute(sa.text("select secret_sealed from tenancy_connections")).scalar_one()
    assert "the-token-secret" not in stored
    assert tenancy.connection_credentials(created["id"])["secret"] == "the-token-secret"


def test_an_edit_keeps_the_secret_unless_a_new_one_is_sent(tenancy):
    created = tenancy.create_connection(ADMIN, "default", {"name": "pve1", "url": "https://pve1", "auth": TOKEN})
    edited = tenancy.update_connection(ADMIN, created["id"], {"auth": {"token_id": "gatehouse@pve!other"},
                                                              "verify_tls": False})
    assert edited["auth"]["token_id"] == "gatehouse@pve!other" and edited["version"] == 2
    assert tenancy.connection_credentials(created["id"])["secret"] == "the-token-secret"
    with pytest.raises(ValidationFailed) as invalid:  # a new method needs its secret
        tenancy.update_connection(ADMIN, created["id"], {"auth": {"username": "root@pam"}})
    assert invalid.value.details == {"auth.password": "is required when the authentication method changes"}
    tenancy.update_connection(ADMIN, created["id"], {"auth": {"username": "root@pam", "password": "pw"}})
    assert tenancy.connection_credentials(created["id"])["secret"] == "pw"
    updates = emitted(tenancy, "tenancy.connection_updated")
    assert updates[0]["data"]["fields"] == ["login", "verify_tls"]
    assert updates[1]["data"]["fields"] == ["auth_method", "auth_secret", "login"]
    assert "pw" not in json.dumps(updates[1]["data"]["changes"])


def test_tls_settings_are_checked_together(tenancy):
    with pytest.raises(ValidationFailed) as invalid:
        tenancy.create_connection(ADMIN, "default", {"name": "pve1", "url": "https://pve1", "auth": TOKEN,
                                                     "verify_tls": False, "fingerprint": ":".join(["AB"] * 32)})
    assert set(invalid.value.details) == {"verify_tls"}
    created = tenancy.create_connection(ADMIN, "default", {"name": "pve1", "url": "https://pve1", "auth": TOKEN,
                                                           "fingerprint": ":".join(["ab"] * 32)})
    assert created["fingerprint"] == ":".join(["AB"] * 32)
    with pytest.raises(ValidationFailed):
        tenancy.update_connection(ADMIN, created["id"], {"verify_tls": False})
    assert tenancy.update_connection(ADMIN, created["id"], {"verify_tls": False, "fingerprint": None})["fingerprint"] \
        is None


def test_connections_of_another_tenant_are_not_found(tenancy):
    acme = enabled_with_tenant(tenancy)
    theirs = tenancy.create_connection(ADMIN, acme["id"], {"name": "acme-pve", "url": "https://10.0.0.1",
                                                           "auth": TOKEN})
    for call in (lambda: tenancy.get_connection(theirs["id"], "default"),
                 lambda: tenancy.update_connection(ADMIN, theirs["id"], {"name": "x"}, "default"),
                 lambda: tenancy.delete_connection(ADMIN, theirs["id"], "default"),
                 lambda: tenancy.reassign_connection(ADMIN, theirs["id"], "default", "default")):
        with pytest.raises(NotFound):
            call()
    assert tenancy.list_connections("default")["total"] == 0
    assert tenancy.list_connections(None)["total"] == 1
    moved = tenancy.reassign_connection(ADMIN, theirs["id"], "default")
    assert moved["tenant_id"] == "default"
    [event] = emitted(tenancy, "tenancy.connection_reassigned")
    assert event["data"]["from"] == acme["id"] and event["data"]["to"] == "default"
    assert event["tenant_ids"] == [acme["id"], "default"]


def test_connection_names_are_unique_across_tenants(tenancy):
    acme = enabled_with_tenant(tenancy)
    tenancy.create_connection(ADMIN, "default", {"name": "pve", "url": "https://pve1", "auth": TOKEN})
    with pytest.raises(Conflict) as refused:
        tenancy.create_connection(ADMIN, acme["id"], {"name": "PVE", "url": "https://pve2", "auth": TOKEN})
    assert refused.value.code == "connection_exists"


# --- memberships --------------------------------------------------------------------------------------------


def test_new_users_join_the_tenant_their_event_names_else_default(tenancy):
    acme = enabled_with_tenant(tenancy)
    new_user(tenancy, "u1", "ann")
    tenancy.enrol_new_user(user_event(identity_events.USER_CREATED, "u2", "bob", tenant_ids=(acme["id"],)))
    tenancy.enrol_new_user(user_event(identity_events.USER_CREATED, "u3", "cat", tenant_ids=("gone",)))
    assert [m["tenant_id"] for m in tenancy.memberships_of("u1")] == ["default"]
    assert [m["tenant_id"] for m in tenancy.memberships_of("u2")] == [acme["id"]]
    assert [m["tenant_id"] for m in tenancy.memberships_of("u3")] == ["default"]


def test_an_accepted_invitation_joins_the_invitations_tenant(tenancy):
    acme = enabled_with_tenant(tenancy)
    registered = user_event(identity_events.USER_REGISTERED, "u1", "ann", invitation_id="inv-1")
    accepted = Event(type=identity_events.INVITATION_ACCEPTED, source="identity", category="users", actor=SYSTEM,
                     resource=Resource("invitation", "inv-1", "ann@example.com"),
                     data={"user_id": "u1", "username": "ann", "tenant_id": acme["id"], "role": "viewer"},
                     tenant_ids=(acme["id"],)).to_dict()
    tenancy.enrol_new_user(registered)
    tenancy.enrol_new_user(accepted)
    tenancy.enrol_new_user(accepted)  # a redelivery changes nothing
    assert tenancy.memberships_of("u1") == [{"tenant_id": acme["id"], "tenant_name": "Acme", "is_default": True}]
    assert len(emitted(tenancy, "tenancy.user_assigned_to_tenant")) == 1


def test_assigning_carries_the_role_and_moves_the_default(tenancy):
    acme = enabled_with_tenant(tenancy)
    new_user(tenancy, "u1", "ann")
    membership, created = tenancy.assign_user(ADMIN, acme["id"], "u1", "ann", role="operator", make_default=True)
    assert created is True and membership["is_default"] is True
    assert tenancy.memberships_of("u1") == [
        {"tenant_id": "default", "tenant_name": "Default", "is_default": False},
        {"tenant_id": acme["id"], "tenant_name": "Acme", "is_default": True}]
    _, again = tenancy.assign_user(ADMIN, acme["id"], "u1", "ann", role="viewer")
    assert again is False
    events = emitted(tenancy, "tenancy.user_assigned_to_tenant")
    assert [(e["data"]["role"], e["data"]["already_member"]) for e in events] == [
        (None, False), ("operator", False), ("viewer", True)]
    assert events[1]["tenant_ids"] == [acme["id"]]  # the user's other tenants must not learn of it
    assert tenancy.is_member("u1", acme["id"]) is True and tenancy.is_member("u2", acme["id"]) is False


def test_removal_never_strands_a_user_and_hands_the_default_on(tenancy):
    acme = enabled_with_tenant(tenancy)
    new_user(tenancy, "u1", "ann")
    tenancy.assign_user(ADMIN, acme["id"], "u1", "ann", role="viewer")
    tenancy.remove_user(ADMIN, "default", "u1")
    assert tenancy.memberships_of("u1") == [{"tenant_id": acme["id"], "tenant_name": "Acme", "is_default": True}]
    with pytest.raises(Conflict) as refused:
        tenancy.remove_user(ADMIN, acme["id"], "u1")
    assert refused.value.code == "last_tenant"
    with pytest.raises(NotFound) as missing:
        tenancy.remove_user(ADMIN, "default", "u1")
    assert missing.value.code == "not_a_member"


def test_members_follow_renames_and_removals(tenancy):
    acme = enabled_with_tenant(tenancy)
    new_user(tenancy, "u1", "ann")
    tenancy.assign_user(ADMIN, acme["id"], "u1", "ann", role="viewer")
    tenancy.follow_rename(user_event(identity_events.USER_UPDATED, "u1", "ann",
                                     changed={"username": {"from": "ann", "to": "anna"}}, profile={"username": "anna"}))
    assert [m["username"] for m in tenancy.list_members(acme["id"])["items"]] == ["anna"]
    tenancy.forget_removed_user(user_event(identity_events.USER_REMOVED, "u1", "anna"))
    assert tenancy.memberships_of("u1") == []
    removed = emitted(tenancy, "tenancy.user_removed_from_tenant")
    assert sorted(e["data"]["tenant_id"] for e in removed) == sorted(["default", acme["id"]])
    assert {e["data"]["reason"] for e in removed} == {"user_removed"}


def test_adoption_puts_users_of_no_tenant_into_default(tenancy):
    new_user(tenancy, "u1", "ann")
    adopted = tenancy.adopt_users(ADMIN, [{"id": "u1", "username": "ann"}, {"id": "u0", "username": "old"}])
    assert adopted == 1
    assert [m["tenant_id"] for m in tenancy.memberships_of("u0")] == ["default"]


def test_member_lists_page(tenancy):
    for number in range(5):
        new_user(tenancy, f"u{number}", f"user{number}")
    first = tenancy.list_members("default", limit=2)
    assert first["total"] == 5 and [m["username"] for m in first["items"]] == ["user0", "user1"]
    rest = tenancy.list_members("default", limit=10, cursor=first["next_cursor"])
    assert [m["username"] for m in rest["items"]] == ["user2", "user3", "user4"] and rest["next_cursor"] is None


# --- placeholders and the takeover rule (issue 17, item 4) ---------------------------------------


def invitation_event(type_, invitation_id, user_id, tenant_id, **data) -> dict:
    return Event(type=type_, source="identity", category="users", actor=SYSTEM,
                 resource=Resource("invitation", invitation_id, "p@example.com"),
                 data={"email": "p@example.com", "user_id": user_id, **data}, tenant_ids=(tenant_id,)).to_dict()


def test_an_invitations_placeholder_belongs_to_the_inviting_tenant_until_revoked(tenancy):
    acme = enabled_with_tenant(tenancy)
    tenancy.enrol_invited(invitation_event(identity_events.INVITATION_SENT, "inv-1", "p1", acme["id"], resent=False))
    assert [m["tenant_id"] for m in tenancy.memberships_of("p1")] == [acme["id"]]
    tenancy.enrol_invited(invitation_event(identity_events.INVITATION_SENT, "inv-1", "p1", acme["id"], resent=True))
    assert len(tenancy.memberships_of("p1")) == 1
    tenancy.forget_revoked_placeholder(invitation_event(identity_events.INVITATION_REVOKED, "inv-1", "p1", acme["id"]))
    assert tenancy.memberships_of("p1") == []


def test_only_an_administrator_of_all_the_users_tenants_brings_them_in(tenancy):
    acme = enabled_with_tenant(tenancy)
    other = tenancy.create_tenant(ADMIN, "Other")
    boss = Actor(user_id="boss", username="boss").__dict__
    tenancy.rbac.admin_users |= {("boss", acme["id"])}
    tenancy.enrol_invited(invitation_event(identity_events.INVITATION_SENT, "inv-1", "p1", other["id"]))
    new_user(tenancy, "u-default")  # in `default`, which boss does not administer
    for user_id in ("p1", "u-default", "nobody-anywhere"):
        with pytest.raises(NotFound) as refused:
            tenancy.assign_user(boss, acme["id"], user_id, None, role="viewer")
        assert (refused.value.code, refused.value.message, refused.value.details) == (
            "not_found", "No such user.", {"user_id": user_id})  # identity's answer for an unknown id
    tenancy.rbac.admin_users |= {("boss", other["id"])}
    tenancy.assign_user(boss, other["id"], "p1", None)  # already a member there: that tenant's business
    assert tenancy.assign_user(boss, acme["id"], "p1", None)[1] is True  # administers every tenant of p1
    tenancy.assign_user(ADMIN, other["id"], "u-default", "ud")  # a super admin: anywhere
    with pytest.raises(Forbidden) as partly:
        tenancy.assign_user(boss, acme["id"], "u-default", "ud")  # boss administers other, not default
    assert partly.value.code == "cross_tenant_user"


def test_an_invitee_joins_the_inviting_tenant_only(tenancy):
    acme = enabled_with_tenant(tenancy)
    gone = tenancy.create_tenant(ADMIN, "Gone")
    tenancy.enrol_invited(invitation_event(identity_events.INVITATION_SENT, "inv-1", "p1", acme["id"]))
    def accepted(user_id, tenant_id):
        return Event(type=identity_events.INVITATION_ACCEPTED, source="identity", category="users", actor=SYSTEM,
                     resource=Resource("invitation", "inv", "p@example.com"),
                     data={"user_id": user_id, "username": user_id, "tenant_id": tenant_id, "role": "viewer"},
                     tenant_ids=(tenant_id,)).to_dict()

    tenancy.enrol_new_user(user_event(identity_events.USER_REGISTERED, "p1", "p1", (acme["id"],), invitation_id="inv"))
    tenancy.enrol_new_user(accepted("p1", acme["id"]))
    assert [(m["tenant_id"], m["is_default"]) for m in tenancy.memberships_of("p1")] == [(acme["id"], True)]
    tenancy.delete_tenant(ADMIN, gone["id"])
    tenancy.enrol_new_user(accepted("p2", gone["id"]))
    assert tenancy.memberships_of("p2") == []  # not `default`


def test_tenants_and_connections_are_changed_only_with_the_routes_permission(tenancy):
    """The routes' x-permission asked again in tenancy: connection.manage in the tenant given (no tenant:
    super admins), super admin for tenants, reassignment and adoption; before any lookup."""
    acme = enabled_with_tenant(tenancy)
    theirs = tenancy.create_connection(ADMIN, acme["id"], {"name": "acme-pve", "url": "https://pve1", "auth": TOKEN})
    boss = Actor(user_id="boss", username="boss").__dict__
    tenancy.rbac.admin_users |= {("boss", "default")}  # admin.users and connection.manage in default only
    for connection_id in (theirs["id"], "no-such-connection"):
        for call in (lambda: tenancy.update_connection(boss, connection_id, {"name": "mine"}, acme["id"]),
                     lambda: tenancy.update_connection(boss, connection_id, {"name": "mine"}),
                     lambda: tenancy.delete_connection(boss, connection_id, acme["id"]),
                     lambda: tenancy.delete_connection(boss, connection_id),
                     lambda: tenancy.reassign_connection(boss, connection_id, "default")):
            with pytest.raises(Forbidden):
                call()
    for call in (lambda: tenancy.create_connection(boss, acme["id"], {"name": "x", "url": "https://x", "auth": TOKEN}),
                 lambda: tenancy.update_tenant(boss, acme["id"], {"description": "mine"}),
                 lambda: tenancy.update_tenant(boss, "default", {"description": "mine"}),  # no tenant.manage
                 lambda: tenancy.create_tenant(boss, "Bossco"),
                 lambda: tenancy.delete_tenant(boss, acme["id"]),
                 lambda: tenancy.adopt_users(boss, [{"id": "u1", "username": "u1"}])):
        with pytest.raises(Forbidden):
            call()
    with pytest.raises(ValidationFailed):
        tenancy.create_connection(boss, None, {"name": "x", "url": "https://x", "auth": TOKEN})
    with pytest.raises(NotFound):  # within their permission, another tenant's connection is none of theirs
        tenancy.update_connection(boss, theirs["id"], {"name": "mine"}, "default")
    assert tenancy.get_connection(theirs["id"]) == theirs
    assert tenancy.get_tenant(acme["id"])["description"] == "first customer"
    mine = tenancy.create_connection(boss, "default", {"name": "boss-pve", "url": "https://pve2", "auth": TOKEN})
    tenancy.delete_connection(boss, mine["id"], "default")


def test_connection_names_tried_are_limited_per_administrator(tenancy):
    """Connection names are unique across tenants: every attempt at one (a creation, a rename), refused
    or not, counts against GATEHOUSE_CONNECTION_NAMES_PER_ADMIN (docs/security.md)."""
    from kernel.errors import TooManyRequests

    tenancy.config = {"GATEHOUSE": Config.from_env({"GATEHOUSE_SECRET_KEY": "unit-test-key",
                                                    "GATEHOUSE_CONNECTION_NAMES_PER_ADMIN": "2"})}
    acme = enabled_with_tenant(tenancy)
    tenancy.create_connection(ADMIN, acme["id"], {"name": "acme-pve", "url": "https://pve1", "auth": TOKEN})
    boss = Actor(user_id="boss", username="boss").__dict__
    tenancy.rbac.admin_users |= {("boss", "default")}
    mine = tenancy.create_connection(boss, "default", {"name": "mine", "url": "https://pve2", "auth": TOKEN})  # 1
    with pytest.raises(Conflict):  # 2
        tenancy.update_connection(boss, mine["id"], {"name": "ACME-pve"}, "default")
    with pytest.raises(TooManyRequests) as limited:
        tenancy.create_connection(boss, "default", {"name": "fresh", "url": "https://pve3", "auth": TOKEN})
    assert limited.value.code == "rate_limited" and limited.value.details["limit"] == "connection_names_per_admin"
    tenancy.update_connection(boss, mine["id"], {"url": "https://pve4"}, "default")  # no name: not counted
    tenancy.create_connection(Actor(username="cli").__dict__, "default",
                              {"name": "by-the-operator", "url": "https://pve5", "auth": TOKEN})
    assert [c["name"] for c in tenancy.list_connections("default")["items"]] == ["by-the-operator", "mine"]
