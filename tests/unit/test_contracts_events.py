"""Typed event payloads (contracts/events): every event type has one payload class, payloads
round-trip, every producer emits data its payload class reads back unchanged, and no payload
can carry a key named like a secret."""
from __future__ import annotations

import dataclasses
import typing
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from contracts import events as contract
from contracts.events import Payload, audit, identity, payload, payload_class, payload_of, proxmox_sync, rbac, tenancy
from kernel.envelope import Actor, Event, Resource, SecretInEvent
from services.audit import events as audit_producer
from services.identity import events as identity_producer
from services.proxmox_sync import events as sync_producer
from services.rbac import events as rbac_producer
from services.tenancy import events as tenancy_producer

MODULES = (identity, rbac, tenancy, proxmox_sync, audit)
ACTOR = Actor(user_id="u-actor", username="alice", ip="127.0.0.1")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

# One stand-in for every ORM row the producers take (duck-typed: they read attributes only).
ROW = SimpleNamespace(
    id="row-1", username="bob", email="bob@example.org", first_name="Bob", last_name="Builder", company="ACME",
    status="active", uid_number=10001, role="operator", user_id="u-bob", tenant_id="t-1", expires_at=WHEN,
    kind="invitation", ref_id="inv-1", attempts=2, name="thing", description="a thing", permissions={"vm.view"},
    cn="devs", gid_number=5005, is_admin=False, url="https://pve.example:8006", verify_tls=True, ca_pem=None,
    fingerprint=None, auth_method="token", login="root@pam!gh", realm="gatehouse", secret_sealed=b"sealed",
    is_default=True)
GUEST = {"id": "c1:pve1:100", "connection_id": "c1", "node": "pve1", "vmid": 100, "type": "qemu", "name": "web"}

PRODUCED = [
    identity_producer.user_registered(ROW, ACTOR, invitation_id="inv-1"),
    identity_producer.user_created(ROW, ACTOR, first_admin=True),
    identity_producer.user_updated(ROW, ACTOR, {"username": {"from": "bobby", "to": "bob"}}),
    identity_producer.user_status_changed(ROW, ACTOR, "pending", "active", reason="ok"),
    identity_producer.user_removed(ROW, ACTOR),
    identity_producer.invitation_sent(ROW, ACTOR, resent=True),
    identity_producer.invitation_accepted(ROW, ROW, ACTOR),
    identity_producer.invitation_revoked(ROW, ACTOR),
    identity_producer.invitation_expired(ROW, ACTOR),
    identity_producer.mail_failed(ROW, ACTOR, "SMTPError: no", gave_up=False),
    identity_producer.password_changed(ROW, ACTOR, by_admin=True),
    identity_producer.password_reset_requested(ROW, ACTOR),
    identity_producer.password_reset_completed(ROW, ACTOR),
    identity_producer.login_succeeded(ROW, ACTOR, "s-1", second_factor="totp"),
    identity_producer.login_failed(None, ACTOR, "nobody", "unknown_user"),
    identity_producer.login_throttled(ROW, ACTOR, "bob", "account", 30),
    identity_producer.rate_limited(ACTOR, "invitations", "too many", 60, user=ROW, tenant_ids=("t-1",)),
    identity_producer.account_unlocked(ROW, ACTOR),
    identity_producer.logout(ROW, ACTOR, "s-1"),
    identity_producer.sessions_revoked(ROW, ACTOR, ["s-1", "s-2"], "admin"),
    identity_producer.settings_changed("smtp", ACTOR, ["host", "password"]),
    identity_producer.smtp_test_sent(ACTOR, "ann@example.com", "SMTPAuthenticationError: (535, b'no')"),
    identity_producer.two_factor_enrollment_started(ROW, ACTOR, re_enrollment=False),
    identity_producer.two_factor_enrolled(ROW, ACTOR, re_enrollment=True),
    identity_producer.two_factor_disabled(ROW, ACTOR, "admin"),
    identity_producer.two_factor_challenged(ROW, ACTOR, ("totp", "recovery_code")),
    identity_producer.two_factor_login_failed(ROW, ACTOR, "invalid_code", "totp", failures=2),
    identity_producer.two_factor_recovery_used(ROW, ACTOR, 7),
    identity_producer.two_factor_recovery_low(ROW, ACTOR, 2),
    identity_producer.two_factor_recovery_regenerated(ROW, ACTOR, 10),
    identity_producer.two_factor_required_for_user(ROW, ACTOR),
    identity_producer.two_factor_requirement_cleared(ROW, ACTOR),
    identity_producer.two_factor_policy_changed(ACTOR, True),
    identity_producer.tenant_switched(ROW, ACTOR, "s-1", "t-1", "t-2"),
    rbac_producer.role_created(ROW, ACTOR),
    rbac_producer.role_updated(ROW, ACTOR, {"added": ["vm.start"], "removed": []}, description_changed=True),
    rbac_producer.role_deleted(ROW, ACTOR),
    rbac_producer.role_assigned("u-bob", "bob", "t-1", "admin", ACTOR, previous="viewer", scope={"nodes": ["pve1"]}),
    rbac_producer.role_unassigned("u-bob", "bob", "t-1", "admin", ACTOR),
    rbac_producer.group_created(ROW, ACTOR),
    rbac_producer.group_updated(ROW, ACTOR, {"is_admin": {"from": False, "to": True}}),
    rbac_producer.group_deleted(ROW, ACTOR, 3),
    rbac_producer.member_added(ROW, "u-bob", "bob", ACTOR),
    rbac_producer.member_removed(ROW, "u-bob", None, ACTOR),
    rbac_producer.authorization_denied(ACTOR, "vm.start", "t-1", "/api/v1/vms"),
    tenancy_producer.multi_tenancy_enabled(ACTOR, 2, 5),
    tenancy_producer.multi_tenancy_disabled(ACTOR),
    tenancy_producer.tenant_created(ROW, ACTOR),
    tenancy_producer.tenant_updated(ROW, ACTOR, {"name": {"from": "a", "to": "thing"}}),
    tenancy_producer.tenant_deleted(ROW, ACTOR, 4),
    tenancy_producer.connection_created(ROW, ACTOR),
    tenancy_producer.connection_updated(ROW, ACTOR, {"name": {"from": "a", "to": "thing"}}, ["name", "auth_secret"]),
    tenancy_producer.connection_reassigned(ROW, ACTOR, "t-1", "t-2"),
    tenancy_producer.connection_deleted(ROW, ACTOR),
    tenancy_producer.user_assigned_to_tenant(ROW, ACTOR, "viewer", already_member=False),
    tenancy_producer.user_removed_from_tenant(ROW, ACTOR, tenancy.REMOVED),
    sync_producer.directory_settings_changed(ACTOR, ["url", "bind_dn"]),
    sync_producer.sync_requested(ACTOR, ["ldap"], None),
    sync_producer.target_synced("ldap", None, "full", [{"op": "add", "kind": "user", "dn": "uid=bob"}], 12, []),
    sync_producer.target_failed("pve:c1", "t-1", {"code": "unreachable", "message": "down"}),
    sync_producer.target_recovered("pve:c1", "t-1", 12.345),
    sync_producer.subject_parked("ldap", None, "user:u-1", "ada",
                                 {"code": "ldap_refused", "message": "invalidAttributeSyntax on uid=ada"}),
    sync_producer.subject_unparked("ldap", None, "user:u-1", "ada", 42.04),
    sync_producer.realm_configured(ACTOR, "c1", "t-1", "gatehouse", "created"),
    sync_producer.realm_configured(ACTOR, "c1", "t-1", "gatehouse", "failed", "failure",
                                   {"code": "refused", "message": "no"}),
    sync_producer.vm_action(ACTOR, "t-1", GUEST, "start", task="UPID:1"),
    sync_producer.vm_action(ACTOR, "t-1", GUEST, "stop", failure={"code": "action_refused", "message": "no"}),
    sync_producer.certificate_fetched(ACTOR, "t-1", "10.0.0.5:8006", fingerprint="AB:CD"),
    sync_producer.certificate_fetched(ACTOR, "t-1", "10.0.0.5:22", failure={"code": "not_tls", "message": "no"}),
    audit_producer.records_purged(10, 99, WHEN, 365),
    audit_producer.forwarding_changed(ACTOR, {"enabled": True, "host": "siem", "port": 514, "protocol": "udp",
                                              "app_name": "gatehouse"}, ["enabled"]),
]


def _sample(cls, field: dataclasses.Field):
    """A value of the field's declared type, distinct per field."""
    if inner := field.metadata.get("nested"):
        return _instance(inner)
    hint = str(typing.get_type_hints(cls)[field.name])
    if "bool" in hint:
        return True
    if "int" in hint or "float" in hint:
        return 7
    if "list" in hint:
        return [f"{field.name}-1", f"{field.name}-2"]
    if "dict" in hint:
        return {"k": field.name}
    return f"{field.name}-value"


def _instance(cls):
    return cls(**{f.name: _sample(cls, f) for f in dataclasses.fields(cls)})


def test_every_event_type_has_one_payload_class():
    types = [type_ for module in MODULES for type_ in module.ALL]
    assert len(types) == len(set(types))
    assert set(contract.registry()) == set(types)
    for module in MODULES:
        declared = {value for name, value in vars(module).items()
                    if name.isupper() and isinstance(value, str) and value.startswith(module.__name__.rsplit(".")[-1] + ".")}
        assert declared == set(module.ALL), module.__name__
        for type_ in module.ALL:
            cls = payload_class(type_)
            assert cls.TYPE == type_ and cls.__module__ == module.__name__
            assert "Subscribers:" in (cls.__doc__ or ""), f"{cls.__name__} names no subscribers"


@pytest.mark.parametrize("cls", sorted(contract.registry().values(), key=lambda c: c.TYPE), ids=lambda c: c.__name__)
def test_payloads_round_trip(cls):
    value = _instance(cls)
    data = value.to_data()
    assert cls.from_data(data) == value
    assert cls.from_data(data).to_data() == data
    for field in dataclasses.fields(cls)[:1]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field.name, None)


@pytest.mark.parametrize("event", PRODUCED, ids=lambda e: e.type)
def test_producers_emit_what_their_payload_reads_back(event):
    cls = payload_class(event.type)
    assert event.source == event.type.split(".")[0] and event.category == cls.CATEGORY
    typed = payload_of(event)
    assert isinstance(typed, cls)
    assert typed.to_data() == event.data
    # and through the wire: the envelope as JSON would carry it
    assert payload_of(Event.from_dict(event.to_dict())).to_data() == event.data


def test_every_event_type_is_produced_somewhere_in_the_tests():
    assert {event.type for event in PRODUCED} == set(contract.registry())


def test_absent_optional_fields_take_their_defaults_and_unknown_ones_are_ignored():
    assigned = rbac.RoleAssigned.from_data({"user_id": "u", "role": "admin", "tenant_id": "t", "later": 1})
    assert assigned.previous_role is None and assigned.scope == {}
    assert identity.UserUpdated.from_data({}).profile == identity.UserProfile()
    with pytest.raises(ValueError, match="user_id"):
        rbac.RoleAssigned.from_data({"role": "admin", "tenant_id": "t"})


def test_keyword_keys_travel_under_their_wire_names():
    switched = identity_producer.tenant_switched(ROW, ACTOR, "s", "t-1", "t-2")
    assert switched.data == {"session_id": "s", "from": "t-1", "to": "t-2"}
    assert payload_of(switched).from_ == "t-1"


def test_optional_keys_absent_unless_they_apply():
    ok = sync_producer.vm_action(ACTOR, "t-1", GUEST, "start")
    assert "error" not in ok.data and "error_message" not in ok.data
    failed = sync_producer.vm_action(ACTOR, "t-1", GUEST, "stop", failure={"code": "x", "message": "y"})
    assert failed.data["error"] == "x" and payload_of(failed).error_message == "y"


def test_a_payload_naming_a_secret_is_refused_when_defined():
    with pytest.raises(TypeError, match="secret"):
        @payload("identity.test_only_never_published", "auth")
        class Leaky(Payload):
            """Subscribers: none."""
            password_hash: str | None = None
    assert "identity.test_only_never_published" not in contract.registry()


def test_the_envelope_still_refuses_secrets_inside_payloads():
    with pytest.raises(SecretInEvent):
        audit_producer.forwarding_changed(ACTOR, {"enabled": True, "token": "x"}, ["token"])
    with pytest.raises(SecretInEvent):
        contract.event(identity.UserUpdated(changed={"password": {"from": 1, "to": 2}}), ACTOR, Resource("user"))


def test_one_event_factory():
    """The envelope factory exists once: the producers' modules define no _event of their own."""
    for producer in (identity_producer, rbac_producer, tenancy_producer, sync_producer, audit_producer):
        assert not hasattr(producer, "_event"), producer.__name__
