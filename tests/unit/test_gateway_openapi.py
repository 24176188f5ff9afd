"""The OpenAPI document: served with its interactive page, one error shape, and every
operation documents the answers the gateway's plumbing can give and the permission it needs."""
from __future__ import annotations

import re
import warnings

import pytest

from gateway.app import create_app
from kernel.config import Config

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_app(Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path_factory.mktemp("gateway"))})).test_client()


@pytest.fixture(scope="module")
def spec(app):
    response = app.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def test_the_interactive_docs_page_is_served_from_the_gateway(app):
    """Swagger UI works offline: the page, its script and styles all come from the gateway."""
    response = app.get("/api/docs")
    assert response.status_code == 200
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(asset.startswith("/assets/") for asset in assets), assets
    for asset in assets:
        assert app.get(asset).status_code == 200, asset
    assert b"/api/v1/openapi.json" in app.get("/assets/docs.js").data


def test_every_error_answer_has_the_one_error_shape(spec):
    shape = spec["components"]["schemas"]["ErrorOut"]
    assert shape["required"] == ["error"]
    wrong = [f"{name} {status}" for name, operation in operations(spec)
             for status, answer in operation["responses"].items() if int(status) >= 400
             and answer.get("content", {}).get("application/json", {}).get("schema") != {"$ref": "#/components/schemas/ErrorOut"}]
    assert not wrong


def test_every_operation_documents_the_plumbings_answers(spec):
    missing = []
    for name, operation in operations(spec):
        expected = {"503", "504"}
        if operation.get("parameters") or operation.get("requestBody"):
            expected |= {"414", "422"}
        if operation.get("requestBody"):
            expected |= {"400", "413"}
        if operation.get("security"):
            expected |= {"401", "403"}
        missing += [f"{name} {status}" for status in expected - set(operation["responses"])]
    assert not missing


def test_every_guarded_operation_names_its_permission(spec):
    named = {name: operation.get("x-permission") for name, operation in operations(spec)}
    assert named["PATCH /api/v1/users/{user_id}"] == "admin.users"
    assert named["GET /api/v1/me"] == "signed_in"
    assert named["POST /api/v1/auth/login"] is None
    assert not [name for name, operation in operations(spec) if operation.get("security") and not named[name]]


def test_a_body_that_is_not_json_is_a_400_naming_the_location(app):
    response = app.post("/api/v1/auth/refresh", data=b"\xff{", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == {"code": "bad_request", "message": "The request body is not valid JSON.",
                                            "details": {"json": ["Invalid JSON body."]}}


def test_unknown_and_mistyped_fields_are_422_with_field_paths(app):
    response = app.post("/api/v1/auth/login", json={"login": 5, "password": "x", "extra": 1})
    assert response.status_code == 422
    details = response.get_json()["error"]["details"]["json"]
    assert set(details) == {"login", "extra"}


def test_an_oversize_body_is_a_413(app):
    response = app.post("/api/v1/auth/login", data=b"x" * (300 * 1024), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("name", ["POST /api/v1/auth/password-reset", "POST /api/v1/users/{user_id}/password-reset",
                                  "POST /api/v1/invitations", "POST /api/v1/invitations/{invitation_id}/resend",
                                  "POST /api/v1/auth/register", "POST /api/v1/auth/login"])
def test_rate_limited_routes_document_429_with_retry_after(spec, name):
    operation = dict(operations(spec))[name]
    assert "rate" in operation["responses"]["429"]["description"] or name.endswith("login")
    assert operation["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"


def test_every_schema_has_one_name(app):
    """apispec names a class twice (RoleOut, RoleOut1) when it met it nested before its direct use,
    and warns; two classes of one name get suffixes too."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = set(app.application._get_spec(force_update=True)["components"]["schemas"])
    assert not [str(w.message) for w in caught if "schema" in str(w.message).lower()]
    assert not [name for name in names if name.rstrip("0123456789") in names - {name}]


def test_editable_resources_document_their_etag_and_if_match(spec):
    found = dict(operations(spec))
    for resource in ("users/{user_id}", "roles/{role_id}", "tenants/{tenant_id}", "connections/{connection_id}"):
        path = f"/api/v1/{resource}"
        assert "ETag" in found[f"GET {path}"]["responses"]["200"]["headers"], path
        patch = found[f"PATCH {path}"]
        assert "ETag" in patch["responses"]["200"]["headers"] and "412" in patch["responses"], path
        assert "If-Match" in [p["name"] for p in patch["parameters"] if p["in"] == "header"], path
    assert "ETag" in found["POST /api/v1/roles"]["responses"]["201"]["headers"]
    takes_if_match = [name for name, operation in operations(spec)
                      if "If-Match" in [p["name"] for p in operation.get("parameters", [])]]
    assert all("412" in found[name]["responses"] for name in takes_if_match)


def test_request_schemas_tell_clients_the_services_rules(spec):
    from services.identity.domain import USERNAME_PATTERN
    from services.rbac.domain import GROUP_CN, PERMISSIONS, ROLE_NAME, SCOPE_KEYS
    from services.tenancy.domain import NAME, REALM

    schemas = spec["components"]["schemas"]
    assert schemas["RoleIn"]["properties"]["permissions"]["items"]["enum"] == sorted(PERMISSIONS)
    assert schemas["RoleIn"]["properties"]["name"]["pattern"] == ROLE_NAME.pattern
    assert schemas["AssignmentIn"]["properties"]["role"]["pattern"] == ROLE_NAME.pattern
    assert set(schemas["Scope"]["properties"]) == set(SCOPE_KEYS)
    assert schemas["GroupIn"]["properties"]["cn"]["pattern"] == GROUP_CN.pattern
    assert schemas["UserCreateIn"]["properties"]["username"]["pattern"] == USERNAME_PATTERN.pattern
    assert schemas["RegisterIn"]["properties"]["username"]["pattern"] == USERNAME_PATTERN.pattern
    assert schemas["ConnectionIn"]["properties"]["realm"]["pattern"] == REALM.pattern
    assert schemas["TenantIn"]["properties"]["name"]["pattern"] == NAME.pattern
    assert schemas["ConnectionPatchIn"]["properties"]["name"]["pattern"] == NAME.pattern


def test_every_creation_documents_its_location(spec):
    created = [(name, operation["responses"]["201"]) for name, operation in operations(spec)
               if "201" in operation["responses"]]
    assert len(created) >= 8
    assert not [name for name, answer in created if "Location" not in answer.get("headers", {})]


def test_every_list_answers_the_one_paging_shape(spec):
    """{items, next_cursor, total}; limit and cursor where it pages (audit omits total: counting
    millions of records would cost more than the page)."""
    schemas = spec["components"]["schemas"]
    odd = []
    for name, operation in operations(spec):
        body = operation["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
        fields = set(schemas.get(body.get("$ref", "").rsplit("/", 1)[-1], {}).get("properties", {}))
        if name.startswith("GET") and "items" in fields and name != "GET /api/v1/sync/status":
            expected = {"items", "next_cursor"} | (set() if name == "GET /api/v1/audit/events" else {"total"})
            odd += [name] if not expected <= fields else []
    assert not odd


def test_every_time_is_an_iso_8601_date_time(spec):
    untyped = [f"{name}.{field}" for name, schema in spec["components"]["schemas"].items()
               for field, value in schema.get("properties", {}).items()
               if field.endswith("_at") and value.get("format") != "date-time"]
    assert not untyped
