"""Domain errors keep their HTTP mapping and survive nameko's RPC serialization."""
from __future__ import annotations

import copy
import json
import pickle
from datetime import datetime, timezone

import pytest
from nameko.exceptions import RemoteError, deserialize, serialize

from kernel import errors
from kernel.errors import (
    BadGateway, BadRequest, Conflict, Forbidden, GatehouseError, Gone, NotFound, PreconditionFailed, ServiceUnavailable,
    TooManyRequests,
    TransientError,
    Unauthorized, ValidationFailed,
)

EXPECTED = [
    (BadRequest, 400, "bad_request"),
    (ValidationFailed, 422, "validation_error"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Gone, 410, "gone"),
    (PreconditionFailed, 412, "precondition_failed"),
    (TooManyRequests, 429, "too_many_requests"),
    (BadGateway, 502, "bad_gateway"),
    (ServiceUnavailable, 503, "service_unavailable"),
]


def test_every_error_class_is_covered():
    classes = {obj for obj in vars(errors).values()
               if isinstance(obj, type) and issubclass(obj, GatehouseError) and obj is not GatehouseError}
    assert classes == {cls for cls, _, _ in EXPECTED}


def test_base_error_defaults():
    error = GatehouseError("boom")
    assert (error.status, error.code, error.message, error.details) == (500, "internal_error", "boom", {})
    assert str(error) == "boom"


@pytest.mark.parametrize("cls,status,code", EXPECTED)
def test_class_keeps_status_code_message_details(cls, status, code):
    error = cls("Something is wrong.", details={"field": "is bad"})
    assert isinstance(error, GatehouseError)
    assert error.status == status
    assert error.code == code
    assert error.message == "Something is wrong."
    assert str(error) == "Something is wrong."
    assert error.details == {"field": "is bad"}


@pytest.mark.parametrize("cls,status,code", EXPECTED)
def test_details_default_to_empty_dict_not_shared(cls, status, code):
    first, second = cls("a"), cls("b")
    assert first.details == {} and second.details == {}
    first.details["x"] = 1
    assert second.details == {}


@pytest.mark.parametrize("cls,status,code", EXPECTED)
def test_custom_code_overrides_class_code(cls, status, code):
    error = cls("Taken.", code="username_taken")
    assert error.code == "username_taken"
    assert error.status == status  # the status stays the class's
    assert cls.code == code  # the class itself is unchanged
    assert cls("again").code == code


@pytest.mark.parametrize("cls,status,code", EXPECTED)
def test_round_trip_through_nameko_serialization(cls, status, code):
    # details map fields to messages (strings), as the gateway shows them
    error = cls("Username is taken.", code="custom_code",
                details={"username": "is taken", "email": ["is taken", "is invalid"]})
    payload = serialize(error)
    json.dumps(payload)  # it crosses the wire as JSON
    again = deserialize(json.loads(json.dumps(payload)))
    assert type(again) is cls
    assert not isinstance(again, RemoteError)
    assert again.message == "Username is taken."
    assert again.code == "custom_code"
    assert again.details == {"username": "is taken", "email": ["is taken", "is invalid"]}
    assert again.status == status


@pytest.mark.parametrize("cls,status,code", EXPECTED)
def test_round_trip_keeps_default_code_and_empty_details(cls, status, code):
    again = deserialize(serialize(cls("Nope.")))
    assert type(again) is cls
    assert (again.message, again.code, again.details) == ("Nope.", code, {})


def wire(error):
    """What a caller rebuilds: nameko's serialize, the JSON body of the reply, nameko's deserialize."""
    return deserialize(json.loads(json.dumps(serialize(error))))


def test_details_keep_their_json_types_across_rpc():
    details = {"retry_after": 60, "fields": {"a": "x"}, "flag": True}
    again = wire(TooManyRequests("Slow down.", code="rate_limited", details=details, retry_after=60))
    assert type(again) is TooManyRequests
    assert again.details == details
    assert type(again.details["retry_after"]) is int and type(again.details["flag"]) is bool
    assert (again.message, again.code, again.retry_after) == ("Slow down.", "rate_limited", 60)


@pytest.mark.parametrize("value", [0, -3, 2.5, False, None, [], [1, "two", {"three": [3.0]}], {"x": {"y": {"z": 1}}},
                                   "60", "None", "", "ünïcödé"])
def test_every_json_value_arrives_as_itself(value):
    assert wire(Conflict("x", details={"value": value})).details == {"value": value}


def test_nameko_would_have_turned_them_into_text():
    """Why the payload is one JSON text: nameko stringifies every non-text leaf of the args."""
    payload = serialize(Conflict("x", details={"n": 1}))
    assert all(isinstance(arg, str) for arg in payload["exc_args"])
    assert payload["exc_args"][:2] == ["x", "conflict"] and payload["value"] == "x"


def test_a_value_json_cannot_carry_crosses_as_its_text():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert wire(Conflict("x", details={"at": when})).details == {"at": str(when)}


def test_no_retry_after_arrives_as_none():
    assert wire(TooManyRequests("Slow down.")).retry_after is None


def test_an_error_of_the_previous_release_is_still_rebuilt():
    """During a rollout an older peer sends (message, code, details as text, retry_after as text)."""
    older = {"exc_type": "TooManyRequests", "exc_path": "kernel.errors.TooManyRequests",
             "exc_args": ["Slow down.", "rate_limited", {"retry_after": "30"}, "30"], "value": "Slow down."}
    again = deserialize(older)
    assert (type(again), again.code, again.details, again.retry_after) == (
        TooManyRequests, "rate_limited", {"retry_after": "30"}, 30)
    older["exc_args"][3] = "None"
    assert deserialize(older).retry_after is None


def test_an_error_survives_copy_and_pickle():
    error = ValidationFailed("Bad.", details={"n": 1, "ok": True})
    for again in (copy.copy(error), pickle.loads(pickle.dumps(error))):
        assert (type(again), again.message, again.code, again.details) == (
            ValidationFailed, "Bad.", "validation_error", {"n": 1, "ok": True})


def test_base_error_is_not_registered_and_arrives_as_remote_error():
    """Only the subclasses are registered with nameko; services raise those."""
    again = deserialize(serialize(GatehouseError("boom")))
    assert isinstance(again, RemoteError) and not isinstance(again, GatehouseError)


def test_transient_error_is_not_a_domain_error():
    assert not issubclass(TransientError, GatehouseError)


def test_an_edit_based_on_a_stale_read_is_refused_naming_the_current_version():
    errors.refuse_stale_edit("role", 3, None)  # no If-Match: no check
    errors.refuse_stale_edit("role", 3, 3)
    with pytest.raises(PreconditionFailed) as stale:
        errors.refuse_stale_edit("role", 3, 2)
    assert stale.value.details == {"version": 3} and "role changed" in stale.value.message


@pytest.mark.parametrize("payload", ["not json", "null", "[1]", '{"details": [1, 2], "retry_after": "x"}',
                                     '{"details": {"a": 1}, "retry_after": 1e400}', '{"retry_after": true}',
                                     '{"details": "text"}', '{"retry_after": -5}'])
def test_a_payload_from_a_broken_peer_still_gives_the_error(payload):
    wire = {"exc_path": "kernel.errors.Conflict", "exc_type": "Conflict", "value": "taken",
            "exc_args": ["taken", "name_taken", payload]}
    error = deserialize(wire)
    assert isinstance(error, Conflict) and error.status == 409 and error.code == "name_taken"
    assert isinstance(error.details, dict)
    assert error.retry_after is None or error.retry_after > 0
