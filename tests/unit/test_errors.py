"""Domain errors keep their HTTP mapping and survive nameko's RPC serialization."""
from __future__ import annotations

import json

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


def test_non_string_detail_values_arrive_as_strings():
    """nameko's safe_for_serialization stringifies every non-str leaf of exc_args: keep details textual."""
    again = deserialize(serialize(Conflict("x", details={"retry_after": 30, "ok": True})))
    assert again.details == {"retry_after": "30", "ok": "True"}


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
    assert stale.value.details == {"version": "3"} and "role changed" in stale.value.message
