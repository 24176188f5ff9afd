"""Every route of the gateway is guarded, and an owed 2FA enrollment lets through only the
routes that help doing it: checked on the app's route table, not by path patterns."""
from __future__ import annotations

import pytest

from gateway.app import create_app
from kernel.config import Config

ANONYMOUS = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/api/v1/openapi.json"), ("GET", "/api/docs"),
    ("GET", "/static/<path:filename>"),
    # The web console's page and files: they hold no data (the page calls the guarded API).
    ("GET", "/"), ("GET", "/<console_path:path>"), ("GET", "/assets/<path:path>"),
    ("GET", "/api/v1/auth/password-policy"), ("GET", "/api/v1/auth/registration"), ("POST", "/api/v1/auth/register"), ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/login/second-factor"),
    ("POST", "/api/v1/auth/refresh"), ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/confirm"), ("POST", "/api/v1/invitations/preview"),
}
# What a user who owes a 2FA enrollment may still call.
ENROLLMENT_ALLOWED = {
    ("GET", "/api/v1/me"), ("POST", "/api/v1/auth/logout"), ("GET", "/api/v1/me/2fa"),
    ("POST", "/api/v1/me/2fa/enrollment"), ("POST", "/api/v1/me/2fa/enrollment/confirm"),
}


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    app = create_app(Config.from_env({"GATEHOUSE_DATA_DIR": str(tmp_path_factory.mktemp("gateway"))}))
    table = {}
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            table[(method, rule.rule)] = app.view_functions[rule.endpoint]
    return table


def test_every_route_but_the_anonymous_ones_is_guarded(routes):
    unguarded = {route for route, view in routes.items() if not hasattr(view, "allowances")}
    assert unguarded == ANONYMOUS


def test_only_the_enrollment_routes_answer_a_user_who_owes_an_enrollment(routes):
    allowed = {route for route, view in routes.items() if "allow_2fa_enrollment" in getattr(view, "allowances", ())}
    assert allowed == ENROLLMENT_ALLOWED


def test_the_enrollment_routes_also_answer_a_user_who_owes_a_password_change(routes):
    # Owing both: enroll first, then change the password.
    for route in ENROLLMENT_ALLOWED:
        assert "allow_password_change" in routes[route].allowances, route


def test_the_super_admin_2fa_actions_need_a_super_admin(routes):
    for route in [("POST", "/api/v1/users/<string:user_id>/2fa/requirement"),
                  ("DELETE", "/api/v1/users/<string:user_id>/2fa/requirement"),
                  ("DELETE", "/api/v1/users/<string:user_id>/2fa"),
                  ("GET", "/api/v1/settings/2fa-policy"), ("PUT", "/api/v1/settings/2fa-policy")]:
        assert routes[route].required_permission == "super_admin", route
