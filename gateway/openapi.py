"""The OpenAPI document: the one error shape, and the answers every route of a kind can give.

Routes document what is particular to them (404 of their object, 409 of their name, ...); the
answers that come from the gateway's plumbing are added here once, so no route can forget them:
a body that is not JSON (400) or too large (413), invalid fields (422), no session (401), an
outstanding requirement or missing permission (403), and a service or broker that does not
answer (503/504); the HTTP server refuses a URL that is too long (414). Every 201 names the new
resource in `Location`, every 429 says when to retry in `Retry-After`; a 412 only ever comes from
If-Match, so an operation that documents one gets the If-Match header parameter.
"""
from __future__ import annotations

import re

from apiflask import APIFlask, Schema
from apiflask.fields import Dict, Nested, String
from marshmallow import ValidationError
from werkzeug.routing import BaseConverter

from gateway.etags import IF_MATCH_PARAMETER


ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
BODY_ANSWERS = {
    "400": "The body is not valid JSON (`bad_request`)",
    "413": "The body is larger than 256 KiB (`payload_too_large`)",
}
INPUT_ANSWERS = {
    "414": "The URL is longer than 4094 bytes (`uri_too_long`)",
    "422": "Invalid fields (`validation_error`); `details` names each field by location",
}
GUARDED_ANSWERS = {
    "401": "Not signed in, or the session ended (`unauthorized`)",
    "403": "A missing permission (`permission_denied`), an outstanding requirement "
           "(`password_change_required`, `2fa_enrollment_required`) or a tenant no longer available",
}
INFRASTRUCTURE_ANSWERS = {
    "503": "A service or the message broker is not available (`service_unavailable`)",
    "504": "A service did not answer in time; the change may still be applied (`service_timeout`)",
}
RETRY_AFTER = {"description": "Seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}
LOCATION = {"description": "The path of what was created", "required": True, "schema": {"type": "string"}}
RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")  # werkzeug's <int:id> is OpenAPI's {id}
METHODS = ("get", "put", "post", "delete", "patch")
UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class UuidConverter(BaseConverter):
    """`<uuid_id:name>`: an id segment that cannot be a word, so `/invitations/preview` is no
    invitation id (its OPTIONS would advertise the id's methods too). The value stays a str."""

    regex = UUID[1:-1]


# What each path variable can be; a value outside it names nothing (404). Every path variable
# of the API has an entry (a unit test checks), so the spec says what a client may put there.
PATH_RULES = {
    "user_id": {"type": "string", "pattern": UUID},
    "invitation_id": {"type": "string", "pattern": UUID},
    "session_id": {"type": "string", "pattern": UUID},
    "connection_id": {"type": "string", "pattern": UUID},
    "group_id": {"type": "string", "pattern": UUID},
    "tenant_id": {"type": "string", "pattern": f"^(default|{UUID[1:-1]})$",
                  "description": "`default` or a tenant's id"},
    "role_id": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$",
                "description": "a built-in role's name or a custom role's id"},
    "vm_id": {"type": "string", "pattern": f"^{UUID[1:-1]}\\.[0-9]{{1,9}}$",
              "description": "`<connection id>.<vmid>`"},
}


class ErrorDetail(Schema):
    code = String(required=True, metadata={"description": "Machine-readable snake_case code"})
    message = String(required=True)
    details = Dict(required=True, metadata={"description": "Field → problem, or further facts; may be empty"})


class ErrorOut(Schema):
    """Every error answer of the API."""

    error = Nested(ErrorDetail, required=True)


def common_answers(operation: dict) -> dict[str, str]:
    """The status → description this operation can answer from the gateway's plumbing."""
    answers = dict(INFRASTRUCTURE_ANSWERS)
    if operation.get("parameters") or operation.get("requestBody"):
        answers.update(INPUT_ANSWERS)
    if operation.get("requestBody"):
        answers.update(BODY_ANSWERS)
    if operation.get("security"):
        answers.update(GUARDED_ANSWERS)
    return answers


def add_common_answers(spec: dict, permissions: dict[tuple[str, str], str | None]) -> dict:
    """Adds the plumbing's answers each operation lacks, and the permission it needs as
    `x-permission` (from `permissions`: (path, method) → permission of its requires())."""
    for path, item in spec.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in common_answers(operation).items():
                responses.setdefault(status, {"description": description,
                                              "content": {"application/json": {"schema": ERROR_REF}}})
            if "429" in responses:  # every 429 says when to come back
                responses["429"].setdefault("headers", {})["Retry-After"] = RETRY_AFTER
            if "201" in responses:  # every creation says where the new thing is
                responses["201"].setdefault("headers", {})["Location"] = LOCATION
            if "412" in responses:
                operation.setdefault("parameters", []).append(IF_MATCH_PARAMETER)
            if (permission := permissions.get((path, method))) is not None:
                operation["x-permission"] = permission
    return spec


def permission_of(view) -> str | None:
    """What the route's requires() asks: its permission, "signed_in" for any signed-in user;
    None for a route anyone may call."""
    while view is not None:
        if hasattr(view, "allowances"):  # set by gateway.auth.requires
            return view.required_permission or "signed_in"
        view = getattr(view, "__wrapped__", None)
    return None


def operations(app: APIFlask):
    """(OpenAPI path, method, view function) of every route and method the spec documents."""
    for rule in app.url_map.iter_rules():
        path = RULE_VARIABLE.sub(r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            yield path, method.lower(), app.view_functions[rule.endpoint]


def route_permissions(app: APIFlask) -> dict[tuple[str, str], str | None]:
    """(OpenAPI path, method) → permission_of() the route."""
    return {(path, method): permission_of(view) for path, method, view in operations(app)}


CONSOLE_HEADER = {
    "name": "X-Gatehouse-Client", "in": "header", "required": False,
    "description": "`console`: the web console; the refresh token travels in the HttpOnly cookie "
                   "`gatehouse_refresh` instead of the body",
    "schema": {"type": "string", "enum": ["console"]},
}
REFRESH_COOKIE_PARAMETER = {
    "name": "gatehouse_refresh", "in": "cookie", "required": False,
    "description": "The console's refresh token (used only with `X-Gatehouse-Client: console` and no body token)",
    "schema": {"type": "string"},
}
SET_COOKIE = {"description": "With `X-Gatehouse-Client: console`: `gatehouse_refresh=<refresh token>; "
                             "Path=/api/v1/auth/refresh; HttpOnly; SameSite=Strict` (+ `Secure` over https); "
                             "sign-out and a refused refresh clear it", "schema": {"type": "string"}}
CONSOLE_TOKEN_OPERATIONS = ("/api/v1/auth/login", "/api/v1/auth/login/second-factor", "/api/v1/auth/refresh")


def add_console_cookie(spec: dict) -> dict:
    """The console's cookie path of the token operations: its header, cookie and Set-Cookie."""
    paths = spec.get("paths", {})
    for path in CONSOLE_TOKEN_OPERATIONS:
        operation = paths.get(path, {}).get("post")
        if operation is None:
            continue
        parameters = operation.setdefault("parameters", [])
        parameters.append(CONSOLE_HEADER)
        if path.endswith("/refresh"):
            parameters.append(REFRESH_COOKIE_PARAMETER)
        operation["responses"]["200"].setdefault("headers", {})["Set-Cookie"] = SET_COOKIE
    logout = paths.get("/api/v1/auth/logout", {}).get("post")
    if logout is not None:
        logout["responses"]["204"].setdefault("headers", {})["Set-Cookie"] = SET_COOKIE
    return spec


def add_path_rules(spec: dict, rules: dict[str, dict]) -> dict:
    """Each path parameter gets its rule from `rules` (by name); a name without one keeps its type."""
    for item in spec.get("paths", {}).values():
        for method in METHODS:
            for parameter in (item.get(method) or {}).get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] in rules:
                    parameter["schema"] = dict(rules[parameter["name"]])
    return spec


def body_schemas(app: APIFlask) -> dict[tuple[str, str], Schema]:
    """(OpenAPI path, method) → the route's body schema (@input), for routes that take one."""
    found = {}
    for path, method, view in operations(app):
        if (schema := (getattr(view, "_spec", None) or {}).get("body")) is not None:
            found[(path, method)] = schema
    return found


def mark_required_bodies(spec: dict, schemas: dict[tuple[str, str], Schema]) -> dict:
    """A body whose schema refuses `{}` (a required field, a whole-body rule) is `required`:
    a client that sends none is told so by the spec, not by a 422."""
    for (path, method), schema in schemas.items():
        body = spec.get("paths", {}).get(path, {}).get(method, {}).get("requestBody")
        if body is None:
            continue
        try:
            type(schema)().load({})
        except ValidationError:
            body["required"] = True
    return spec


def install(app: APIFlask, path_rules: dict[str, dict] | None = None) -> None:
    rules = {**PATH_RULES, **(path_rules or {})}

    @app.spec_processor
    def _complete(spec: dict) -> dict:
        spec = add_path_rules(mark_required_bodies(spec, body_schemas(app)), rules)
        return add_console_cookie(add_common_answers(spec, route_permissions(app)))
