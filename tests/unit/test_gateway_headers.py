"""Security headers on every answer (errors included) and CORS only for configured origins,
through the real app factory (no broker is needed for these answers)."""
from __future__ import annotations

import pytest

from gateway.app import create_app
from gateway.headers import allowed_origins
from kernel.config import Config

UI = "https://ui.example.com"


def client(tmp_path, **settings):
    return create_app(Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path), **settings})).test_client()


@pytest.mark.parametrize("method, path", [("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/me"),
                                          ("POST", "/api/v1/auth/refresh"), ("GET", "/api/nowhere")])
def test_every_answer_carries_the_security_headers(tmp_path, method, path):
    response = client(tmp_path).open(path, method=method, data=b"{", content_type="application/json")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # the public URL is http


def test_a_header_the_route_set_is_kept_not_doubled(tmp_path):
    from flask import Response

    app = create_app(Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path)}))
    app.add_url_rule("/cached", "cached", lambda: Response("{}", headers={"cache-control": "max-age=60"}))
    response = app.test_client().get("/cached")
    assert response.headers.getlist("Cache-Control") == ["max-age=60"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_https_public_url_adds_hsts(tmp_path):
    response = client(tmp_path, GATEHOUSE_PUBLIC_URL="https://gatehouse.example.com").get("/api/v1/openapi.json")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_no_cors_by_default(tmp_path):
    app = client(tmp_path)
    answer = app.get("/api/v1/openapi.json", headers={"Origin": UI})
    assert "Access-Control-Allow-Origin" not in answer.headers
    preflight = app.options("/api/v1/users", headers={"Origin": UI, "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_answers_a_configured_origin_and_its_preflight(tmp_path):
    app = client(tmp_path, GATEHOUSE_CORS_ORIGINS=f"{UI}/, https://other.example.com")
    preflight = app.options("/api/v1/users", headers={
        "Origin": UI, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 204 and preflight.data == b""
    assert preflight.headers["Access-Control-Allow-Origin"] == UI
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers  # bearer tokens, no cookies

    answer = app.post("/api/v1/auth/refresh", json={}, headers={"Origin": UI})
    assert answer.status_code == 422
    assert answer.headers["Access-Control-Allow-Origin"] == UI
    assert "X-Request-ID" in answer.headers["Access-Control-Expose-Headers"]
    assert "Origin" in answer.headers["Vary"]


def test_cors_ignores_other_origins(tmp_path):
    app = client(tmp_path, GATEHOUSE_CORS_ORIGINS=UI)
    preflight = app.options("/api/v1/users", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "DELETE"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in app.get("/healthz", headers={"Origin": "https://evil.example.com"}).headers


def test_allowed_origins_parses_the_setting():
    assert allowed_origins("") == frozenset()
    assert allowed_origins(" https://a.example/ ,https://b.example:8443,") == {"https://a.example",
                                                                            "https://b.example:8443"}
