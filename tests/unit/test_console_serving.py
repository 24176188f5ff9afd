"""The console as the gateway serves it (no broker needed): the page at every non-API path under
a strict CSP, assets with cache headers, and the console's refresh-cookie rules that need no
session."""
from __future__ import annotations

import re

import pytest
from flask import Response

from gateway.app import create_app
from gateway.routes.auth import REFRESH_COOKIE, set_refresh_cookie
from kernel.config import Config


def make_app(tmp_path, **settings):
    return create_app(Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), **settings}))


@pytest.fixture
def client(tmp_path):
    return make_app(tmp_path).test_client()


@pytest.mark.parametrize("path", ["/", "/sign-in", "/invite", "/reset-password", "/no/such/page", "/users/123"])
def test_every_non_api_path_is_the_console_page_under_a_strict_csp(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    assert b'<script type="module" src="/assets/app.js">' in response.data
    policy = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'" and policy["img-src"] == "'self' data:"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_the_console_page_has_no_inline_script_or_style(client):
    page = client.get("/").get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert "<style" not in page and "style=" not in page


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/nothing", "/assets/nothing.js", "/assets/../__init__.py"])
def test_api_and_asset_paths_that_do_not_exist_stay_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_assets_are_cached_vendored_ones_for_long(client):
    own = client.get("/assets/app.js")
    assert own.status_code == 200 and own.headers["Cache-Control"] == "no-cache" and own.headers.get("ETag")
    assert client.get("/assets/app.js", headers={"If-None-Match": own.headers["ETag"]}).status_code == 304
    vendored = client.get("/assets/vendor/preact-11.2.0/preact.mjs")
    assert vendored.status_code == 200 and "immutable" in vendored.headers["Cache-Control"]
    assert vendored.content_type.startswith("text/javascript")


def test_vendored_code_comes_with_its_licences(client):
    for folder in ("preact-11.2.0", "htm-3.1.1", "swagger-ui-dist-5.36.0"):
        assert client.get(f"/assets/vendor/{folder}/LICENSE").status_code == 200, folder


def test_refresh_needs_a_body_token_unless_the_console_header_is_sent(client):
    client.set_cookie(REFRESH_COOKIE, "x" * 40, path="/api/v1/auth/refresh")
    response = client.post("/api/v1/auth/refresh", json={})  # the cookie alone (a cross-site request) is refused
    assert response.status_code == 422
    assert "refresh_token" in response.get_json()["error"]["details"]["json"]


def test_the_console_header_without_a_cookie_asks_to_sign_in(tmp_path):
    response = make_app(tmp_path).test_client().post("/api/v1/auth/refresh", json={},
                                                     headers={"X-Gatehouse-Client": "console"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "refresh_token_missing"


@pytest.mark.parametrize("public_url, secure", [("http://gatehouse.example:8080", False),
                                                ("https://gatehouse.example", True)])
def test_the_refresh_cookie_is_httponly_strict_narrow_and_secure_over_https(tmp_path, public_url, secure):
    app = make_app(tmp_path, GATEHOUSE_PUBLIC_URL=public_url)
    with app.test_request_context("/api/v1/auth/login"):
        response = Response()
        set_refresh_cookie(response, "the-token")
    cookie = response.headers["Set-Cookie"]
    parts = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(f"{REFRESH_COOKIE}=the-token;")
    assert "httponly" in parts and "SameSite=Strict" in cookie and "Path=/api/v1/auth/refresh" in cookie
    assert ("secure" in parts) is secure


def test_the_openapi_document_describes_the_console_cookie(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    refresh = spec["paths"]["/api/v1/auth/refresh"]["post"]
    names = {(parameter["in"], parameter["name"]) for parameter in refresh["parameters"]}
    assert {("header", "X-Gatehouse-Client"), ("cookie", "gatehouse_refresh")} <= names
    assert "Set-Cookie" in refresh["responses"]["200"]["headers"]
    body = refresh["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert "refresh_token" in body["properties"] and "refresh_token" not in body.get("required", [])
    policy = spec["paths"]["/api/v1/auth/password-policy"]["get"]
    assert "security" not in policy and "x-permission" not in policy


def test_no_cors_preflight_grants_the_console_header(tmp_path):
    """Even an allowed origin's script cannot send X-Gatehouse-Client: the cookie path is same-origin only."""
    client = make_app(tmp_path, GATEHOUSE_CORS_ORIGINS="https://ui.example.com").test_client()
    response = client.options("/api/v1/auth/refresh", headers={
        "Origin": "https://ui.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-gatehouse-client, content-type"})
    allowed = [name.strip().lower() for name in response.headers.get("Access-Control-Allow-Headers", "").split(",")]
    assert "x-gatehouse-client" not in allowed
    assert response.headers.get("Access-Control-Allow-Credentials") is None
