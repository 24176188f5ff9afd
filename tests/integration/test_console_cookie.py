"""The console's refresh cookie through the real platform: set at sign-in instead of the body's
refresh token, HttpOnly and SameSite=Strict on the refresh route only, used by refresh only with
the console header, rotated, dropped when refused, cleared on sign-out."""
from __future__ import annotations

import requests

from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME, random_client_ip

CONSOLE = {"X-Gatehouse-Client": "console"}
COOKIE = "gatehouse_refresh"


def browser(platform) -> requests.Session:
    session = requests.Session()
    session.headers["X-Forwarded-For"] = random_client_ip()
    return session


def console_sign_in(platform, session) -> dict:
    response = session.post(platform.url + "/api/v1/auth/login", headers=CONSOLE,
                            json={"login": ADMIN_USERNAME, "password": ADMIN_PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def set_cookie_of(response) -> str:
    found = [value for value in response.raw.headers.getlist("Set-Cookie") if value.startswith(f"{COOKIE}=")]
    assert len(found) == 1, response.headers
    return found[0]


def test_console_sign_in_sets_the_refresh_token_as_an_httponly_strict_cookie(platform):
    session = browser(platform)
    response = console_sign_in(platform, session)
    body = response.json()
    assert "refresh_token" not in body and body["access_token"]
    cookie = set_cookie_of(response)
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/api/v1/auth/refresh" in attributes
    assert "secure" not in attributes  # the test platform's public URL is http
    # Scripts and other clients are unchanged: without the header the token is in the body.
    plain = browser(platform).post(platform.url + "/api/v1/auth/login", timeout=30,
                                   json={"login": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert plain.json()["refresh_token"] and COOKIE not in plain.cookies


def test_refresh_uses_the_cookie_only_with_the_console_header_and_rotates_it(platform):
    session = browser(platform)
    console_sign_in(platform, session)
    first = session.cookies.get(COOKIE)
    refused = session.post(platform.url + "/api/v1/auth/refresh", json={}, timeout=30)  # no header: a cross-site form
    assert refused.status_code == 422
    assert session.cookies.get(COOKIE) == first  # and the cookie was not spent
    refreshed = session.post(platform.url + "/api/v1/auth/refresh", json={}, headers=CONSOLE, timeout=30)
    assert refreshed.status_code == 200, refreshed.text
    assert "refresh_token" not in refreshed.json()
    second = session.cookies.get(COOKIE)
    assert second and second != first
    me = session.get(platform.url + "/api/v1/me", timeout=30,
                     headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == ADMIN_USERNAME


def test_a_spent_cookie_is_refused_and_dropped(platform):
    session = browser(platform)
    console_sign_in(platform, session)
    spent = session.cookies.get(COOKIE)
    assert session.post(platform.url + "/api/v1/auth/refresh", json={}, headers=CONSOLE, timeout=30).status_code == 200
    replay = requests.post(platform.url + "/api/v1/auth/refresh", json={}, timeout=30,
                           headers={**CONSOLE, "Cookie": f"{COOKIE}={spent}", "X-Forwarded-For": random_client_ip()})
    assert replay.status_code == 401
    assert replay.json()["error"]["code"] == "refresh_token_reused"
    cleared = set_cookie_of(replay)
    assert "max-age=0" in cleared.lower() or "expires=thu, 01 jan 1970" in cleared.lower()
    # The reuse ended the whole session: the rotated cookie is dead too.
    assert session.post(platform.url + "/api/v1/auth/refresh", json={}, headers=CONSOLE, timeout=30).status_code == 401


def test_sign_out_clears_the_cookie_and_ends_the_session(platform):
    session = browser(platform)
    token = console_sign_in(platform, session).json()["access_token"]
    cookie = session.cookies.get(COOKIE)
    response = session.post(platform.url + "/api/v1/auth/logout", headers={**CONSOLE, "Authorization": f"Bearer {token}"},
                            timeout=30)
    assert response.status_code == 204
    assert session.cookies.get(COOKIE) is None
    again = requests.post(platform.url + "/api/v1/auth/refresh", json={}, timeout=30,
                          headers={**CONSOLE, "Cookie": f"{COOKIE}={cookie}", "X-Forwarded-For": random_client_ip()})
    assert again.status_code == 401


def test_the_password_policy_is_readable_without_signing_in(platform):
    response = requests.get(platform.url + "/api/v1/auth/password-policy", timeout=30)
    assert response.status_code == 200
    assert set(response.json()) == {"min_length", "max_length", "refuse_common"}


def test_users_change_their_own_names_and_nothing_else(platform, unique):
    admin = platform.admin()
    user, api = platform.create_user(f"own{unique}")
    changed = api.patch("/api/v1/me", json={"first_name": "Own", "last_name": "Name"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["first_name"], changed.json()["last_name"], changed.json()["id"]) == ("Own", "Name", user["id"])
    assert admin.get(f"/api/v1/users/{user['id']}").json()["full_name"] == "Own Name"
    for field, value in (("email", f"other{unique}@example.com"), ("username", f"other{unique}"), ("status", "active")):
        refused = api.patch("/api/v1/me", json={field: value})
        assert refused.status_code == 422 and field in refused.json()["error"]["details"]["json"], refused.text
    assert api.patch("/api/v1/me", json={"first_name": ""}).status_code == 422
    assert platform.api().patch("/api/v1/me", json={"first_name": "X"}).status_code == 401
