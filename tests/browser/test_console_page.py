"""The console page itself: served at every non-API path, under a strict CSP, loading nothing
from anywhere but the gateway; sign-in and sign-out; a reload keeps the session through the
HttpOnly refresh cookie only."""
from __future__ import annotations

from urllib.parse import urlsplit

import requests
from playwright.sync_api import expect

from tests.browser.helpers import screenshot, sign_in, sign_out
from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME


def test_unknown_paths_render_the_console_and_api_paths_stay_json(platform, console):
    page = console.page
    response = page.goto("/no/such/page")
    assert response.status == 200 and response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    api = requests.get(platform.url + "/api/v1/no-such-route", timeout=10)
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_the_console_page_has_a_strict_csp_and_loads_only_from_the_gateway(platform, console, tmp_path):
    page = console.page
    response = page.goto("/sign-in")
    policy = response.headers["content-security-policy"]
    for directive in ("script-src 'self'", "style-src 'self'", "object-src 'none'", "base-uri 'none'",
                      "frame-ancestors 'none'"):
        assert directive in policy, policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect(page.locator(".user-button")).to_be_visible()
    page.goto("/profile")
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    expect(page.locator("table")).to_be_visible()
    screenshot(page, "profile", tmp_path)
    origin = urlsplit(platform.url)
    foreign = [url for url in console.requests
               if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != origin.netloc]
    assert not foreign, foreign
    assert any("/assets/vendor/preact" in url for url in console.requests)


def test_a_reload_keeps_the_session_through_the_httponly_cookie_only(platform, console):
    page = console.page
    page.goto("/sign-in")
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect(page.locator(".user-button")).to_be_visible()
    cookies = {cookie["name"]: cookie for cookie in console.context.cookies()}
    refresh = cookies["gatehouse_refresh"]
    assert refresh["httpOnly"] and refresh["sameSite"] == "Strict" and refresh["path"] == "/api/v1/auth/refresh"
    assert page.evaluate("document.cookie") == ""  # page scripts cannot read it
    page.goto("/profile")  # a full load: the access token in memory is gone
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    sign_out(page)
    assert "gatehouse_refresh" not in {cookie["name"] for cookie in console.context.cookies()}
    page.goto("/profile")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_api_docs_work_offline(platform, console):
    page = console.page
    page.goto("/api/docs")
    expect(page.get_by_text("Gatehouse API").first).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()
    origin = urlsplit(platform.url)
    foreign = [url for url in console.requests
               if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != origin.netloc]
    assert not foreign, foreign
