"""The domain event envelope: identity, routing, validation and the secret guard."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from kernel.envelope import (
    CATEGORIES, OUTCOMES, SCHEMA_VERSION, Actor, Event, Resource, SecretInEvent, exchange_of,
)

ACTOR = Actor(user_id="u-1", username="alice", ip="10.0.0.7", request_id="req-42")
RESOURCE = Resource("user", "u-1", "alice")


def make(**overrides) -> Event:
    fields = dict(type="identity.user_created", source="identity", category="users",
                  actor=ACTOR, resource=RESOURCE, data={"username": "alice"})
    fields.update(overrides)
    return Event(**fields)


def test_each_event_gets_a_unique_uuid4_id():
    ids = {make().id for _ in range(50)}
    assert len(ids) == 50
    for event_id in ids:
        parsed = uuid.UUID(event_id)
        assert str(parsed) == event_id and parsed.version == 4


def test_occurred_at_is_utc_iso_ending_in_z_and_recent():
    event = make()
    assert event.occurred_at.endswith("Z")
    assert "+" not in event.occurred_at
    parsed = datetime.fromisoformat(event.occurred_at.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - parsed) < timedelta(seconds=5)


def test_version_action_and_exchange():
    event = make(type="identity.login_failed", outcome="failure", category="auth")
    assert event.version == SCHEMA_VERSION == 1
    assert event.action == "login_failed"
    assert event.exchange == "identity.events" == exchange_of("identity")


def test_action_keeps_dots_after_the_source():
    assert make(type="identity.user.renamed").action == "user.renamed"


@pytest.mark.parametrize("bad_type", ["rbac.user_created", "identityuser_created", "identity", "xidentity.x"])
def test_type_must_start_with_source(bad_type):
    with pytest.raises(ValueError, match="must start with its source"):
        make(type=bad_type)


def test_unknown_category_refused():
    with pytest.raises(ValueError, match="category"):
        make(category="gossip")


def test_unknown_outcome_refused():
    with pytest.raises(ValueError, match="outcome"):
        make(outcome="maybe")


@pytest.mark.parametrize("category", sorted(CATEGORIES))
@pytest.mark.parametrize("outcome", sorted(OUTCOMES))
def test_every_known_category_and_outcome_accepted(category, outcome):
    event = make(category=category, outcome=outcome)
    assert (event.category, event.outcome) == (category, outcome)


@pytest.mark.parametrize("data", [
    {"password": "x"},
    {"Password": "x"},
    {"password_hash": "$argon2id$..."},
    {"token": "abc"},
    {"access_token": "abc"},
    {"secret": "s"},
    {"jwt_secret": "s"},
    {"user": {"profile": {"password": "x"}}},
    {"users": [{"name": "a"}, {"name": "b", "token": "t"}]},
    {"batches": [[{"secret": 1}]]},
    {"changes": ({"password_hash": "h"},)},
])
def test_secret_looking_keys_refused_at_any_depth(data):
    with pytest.raises(SecretInEvent):
        make(data=data)


def test_secret_error_names_the_path():
    with pytest.raises(SecretInEvent, match=r"data\.user\.password"):
        make(data={"user": {"password": "x"}})


def test_secret_in_event_is_a_value_error():
    assert issubclass(SecretInEvent, ValueError)


def test_ordinary_keys_pass_at_any_depth():
    data = {
        "username": "alice", "email": "alice@example.com", "first_name": "Alice", "role": "admin",
        "first_admin": True, "count": 3, "roles": [{"name": "viewer", "tenant_id": "default"}],
        "nested": {"status": "active", "values": [1, 2, {"reason": "bad_password_attempts_counted"}]},
    }
    # values may say anything; only keys are checked
    data["reason"] = "password wrong"
    event = make(data=data)
    assert event.data == data


def test_to_dict_from_dict_round_trip():
    event = make(tenant_ids=["default", "acme", "default"], data={"username": "alice", "roles": ["viewer"], "n": {"x": 1}})
    assert event.tenant_ids == ("default", "acme")
    body = event.to_dict()
    assert body["action"] == "user_created"
    assert body["actor"] == {"user_id": "u-1", "username": "alice", "ip": "10.0.0.7", "request_id": "req-42",
                             "display_name": None, "email": None}
    assert body["resource"] == {"type": "user", "id": "u-1", "name": "alice"}
    assert Event.from_dict(body) == event
    # and through the wire format
    assert Event.from_dict(json.loads(json.dumps(body))) == event


def test_round_trip_keeps_failure_outcome_and_no_tenant():
    event = make(type="identity.login_failed", category="auth", outcome="failure", data={})
    again = Event.from_dict(event.to_dict())
    assert again == event
    assert again.outcome == "failure" and again.tenant_ids == ()


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_from_dict_refuses_other_schema_versions(version):
    body = make().to_dict()
    body["version"] = version
    with pytest.raises(ValueError, match="version"):
        Event.from_dict(body)


def test_from_dict_refuses_missing_version():
    body = make().to_dict()
    del body["version"]
    with pytest.raises(ValueError, match="version"):
        Event.from_dict(body)


@pytest.mark.parametrize("body", [None, "event", ["a"], 1, b"{}"])
def test_from_dict_refuses_non_dict_bodies(body):
    with pytest.raises(ValueError, match="not an object"):
        Event.from_dict(body)


def test_from_dict_still_refuses_secrets():
    body = make().to_dict()
    body["data"] = {"password": "hunter2"}
    with pytest.raises(SecretInEvent):
        Event.from_dict(body)


def test_actor_as_user_keeps_ip_and_request_id():
    anonymous = Actor(ip="192.0.2.1", request_id="req-1")
    known = anonymous.as_user("u-9", "bob")
    assert known == Actor(user_id="u-9", username="bob", ip="192.0.2.1", request_id="req-1")
    assert anonymous.user_id is None  # the original is untouched


def test_actor_from_dict_tolerates_none_and_extra_keys():
    assert Actor.from_dict(None) == Actor()
    assert Actor.from_dict({"username": "a", "ip": "1.2.3.4", "extra": 1}) == Actor(username="a", ip="1.2.3.4")
