"""JSON bodies beyond what Python's parser survives are refused at the door with a 4xx that
names the problem, through the real app factory (no broker: the guard answers first)."""
from __future__ import annotations

import json

import pytest

from gateway.app import create_app
from gateway.json_guard import MAX_DEPTH, check_body, first_problem, nesting_depth
from kernel.config import Config
from kernel.errors import BadRequest, ValidationFailed


@pytest.fixture
def client(tmp_path):
    return create_app(Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path)})).test_client()


def post(client, body: str, path="/api/v1/auth/login"):
    return client.post(path, data=body.encode("utf-8", "surrogatepass"), content_type="application/json")


@pytest.mark.parametrize("body", ["[" * 1000 + "]" * 1000, '{"a":' * 5000 + "1" + "}" * 5000,
                                  "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)])
def test_deep_nesting_is_a_400_naming_the_body(client, body):
    answer = post(client, body)
    assert answer.status_code == 400
    assert answer.json["error"]["details"] == {"body": f"nested more than {MAX_DEPTH} levels"}


def test_a_huge_integer_is_a_422_naming_its_field(client):
    answer = post(client, '{"login": ' + "1" * 5000 + ', "password": "x"}')
    assert answer.status_code == 422
    assert answer.json["error"]["details"] == {"login": "a number of more than 40 characters"}


def test_a_huge_integer_deep_in_a_list_names_its_path(client):
    answer = post(client, '{"groups": [1, {"gid_number": ' + "9" * 100 + '}]}', path="/api/v1/groups")
    assert answer.status_code == 422
    assert answer.json["error"]["details"] == {"groups.1.gid_number": "a number of more than 40 characters"}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_numbers(client, constant):
    answer = post(client, '{"login": ' + constant + ', "password": "x"}')
    assert answer.status_code == 422
    assert answer.json["error"]["details"] == {"login": f"{constant} is not a number"}


def test_a_lone_surrogate_is_a_422_naming_its_field(client):
    answer = post(client, '{"first_name": "\\ud800", "email": "a@example.com"}', path="/api/v1/auth/register")
    assert answer.status_code == 422
    assert answer.json["error"]["details"] == {"first_name": "not valid Unicode (a lone surrogate)"}


def test_a_lone_surrogate_in_a_key_is_refused(client):
    answer = post(client, '{"\\udc00": 1}')
    assert answer.status_code == 422
    assert "key" in answer.json["error"]["details"]["?"]


def test_a_body_that_is_not_utf8_is_left_to_the_schemas_400(client):
    answer = client.post("/api/v1/auth/login", data=b'{"login": "\xff"}', content_type="application/json")
    assert answer.status_code == 400
    assert answer.json["error"]["details"] == {"json": ["Invalid JSON body."]}


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert nesting_depth(json.dumps({"a": "[" * 1000, "b": ["]]]{{{\\\"["]})) == 2
    check_body(json.dumps({"note": "{" * 1000}).encode())  # no error


def test_valid_bodies_pass_untouched():
    check_body(b'{"login": "ada", "password": "x", "n": 12345678901234567890, "f": 1.5e10, "s": "\\u00e9\\ud83d\\ude00"}')
    assert first_problem({"a": [1, "b", {"c": None}]}) is None


def test_a_pair_of_surrogates_is_a_character_not_a_problem():
    check_body('{"name": "\\ud83d\\ude00"}'.encode())


def test_errors_are_the_project_errors():
    with pytest.raises(BadRequest):
        check_body(b"[" * 100 + b"]" * 100)
    with pytest.raises(ValidationFailed):
        check_body(b'{"x": "\\udfff"}')


def test_405_names_the_allowed_methods(client):
    answer = client.delete("/api/v1/auth/login")
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert answer.json["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/api/v1/groups/%2F/members", "/api/v1/groups//members", "/api//v1/me"])
def test_an_odd_path_is_a_json_404_not_an_html_redirect(client, path):
    answer = client.get(path)
    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "not_found"


def _schema_classes():
    import importlib
    import inspect
    import pkgutil

    import gateway.schemas
    from apiflask import Schema
    modules = [gateway.schemas] + [importlib.import_module(f"gateway.schemas.{info.name}")
                                   for info in pkgutil.iter_modules(gateway.schemas.__path__)]
    return {cls for module in modules for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, Schema) and cls.__module__.startswith("gateway.schemas")}


def test_every_boolean_field_of_the_api_takes_only_true_or_false():
    from marshmallow import fields

    from gateway.schemas import JsonBoolean
    loose = [f"{cls.__name__}.{name}" for cls in _schema_classes()
             for name, field in cls._declared_fields.items()
             if isinstance(field, fields.Boolean) and not isinstance(field, JsonBoolean)]
    assert loose == []


@pytest.mark.parametrize("value", [1, 0, "true", "yes", None])
def test_json_boolean_refuses_what_is_not_a_boolean(value):
    from marshmallow import ValidationError

    from gateway.schemas.twofactor import TwoFactorPolicy
    with pytest.raises(ValidationError):
        TwoFactorPolicy().load({"require_for_super_admin": value})
    assert TwoFactorPolicy().load({"require_for_super_admin": False}) == {"require_for_super_admin": False}


@pytest.fixture
def spec(client):
    return client.get("/api/v1/openapi.json").json


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "patch", "delete"):
                yield path, method, operation


def test_every_path_parameter_has_a_rule(spec):
    loose = [f"{method.upper()} {path} {parameter['name']}" for path, method, operation in _operations(spec)
             for parameter in operation.get("parameters", [])
             if parameter["in"] == "path" and not ({"pattern", "enum"} & set(parameter["schema"]))]
    assert loose == []


def test_a_body_with_required_fields_is_marked_required(spec):
    required = {(path, method) for path, method, operation in _operations(spec)
                if operation.get("requestBody", {}).get("required")}
    assert ("/api/v1/auth/login", "post") in required
    assert ("/api/v1/users", "post") in required
    assert ("/api/v1/users/{user_id}", "patch") not in required  # every field optional: {} is a valid PATCH


def test_the_inventory_actions_are_an_enum(spec):
    parameters = spec["paths"]["/api/v1/inventory/vms/{vm_id}/{action}"]["post"]["parameters"]
    action = next(parameter for parameter in parameters if parameter["name"] == "action")
    assert set(action["schema"]["enum"]) == {"start", "stop", "shutdown", "reboot"}


def test_a_word_beside_an_id_route_advertises_only_its_own_methods(client):
    assert set(client.options("/api/v1/invitations/preview").headers["Allow"].split(", ")) == {"POST", "OPTIONS"}


def test_a_short_number_too_large_to_hold_is_refused(client):
    answer = post(client, '{"login": 1e400, "password": "x"}')
    assert answer.status_code == 422
    assert answer.json["error"]["details"] == {"login": "a number too large to hold"}
