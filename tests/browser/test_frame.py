"""The console's frame and session pages in real Chromium: the steps an account owes (password
change, 2FA enrollment), registration with errors next to their fields, a session that ends
while the console is open, the tenant selector, and a phone's width."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Console
from tests.browser.helpers import fresh_totp, screenshot, sign_in
from tests.harness import PASSWORD, eventually, register

NEW_PASSWORD = "my very own passphrase 7"


def test_an_account_created_by_an_admin_must_change_its_password_first(platform, console, unique):
    name = f"chg{unique}"
    _, api = platform.create_user(name, must_change_password=True)
    page = console.page
    page.goto("/profile")  # where the user wanted to go
    sign_in(page, name, api.password)
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    expect(page.get_by_role("navigation")).to_have_count(0)  # nothing else until it is done
    page.goto("/profile")
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    page.get_by_label("Current password").fill("not the password")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat the password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".field-error")).to_contain_text("current password is not right")
    expect(page.get_by_label("New password")).to_have_value(NEW_PASSWORD)  # kept
    page.get_by_label("Current password").fill(api.password)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    assert platform.api().post("/api/v1/auth/login", json={"login": name, "password": NEW_PASSWORD}).status_code == 200


def test_an_account_required_to_use_2fa_enrolls_before_anything_else(platform, console, unique):
    name = f"req{unique}"
    user, _ = platform.create_user(name)
    required = platform.admin().post(f"/api/v1/users/{user['id']}/2fa/requirement")
    assert required.status_code == 200, required.text
    page = console.page
    sign_in(page, name, PASSWORD)
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Set up two-factor authentication").click()
    secret = page.locator("#totp-secret").inner_text().strip()
    page.get_by_label("Code from the app").fill(fresh_totp(secret))
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.locator(".recovery-codes code")).to_have_count(10)
    page.get_by_role("button", name="I have saved them, continue").click()
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    expect(page.get_by_text("An administrator requires two-factor authentication")).to_be_visible()
    expect(page.get_by_role("button", name="Turn off")).to_have_count(0)  # not while required


def test_registration_shows_errors_next_to_fields_keeps_input_and_ends_waiting_for_approval(platform, console, unique, tmp_path):
    taken = f"tkn{unique}"
    assert register(platform.api(), taken).status_code == 201
    name = f"reg{unique}"
    page = console.page
    page.goto("/sign-in")
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    page.get_by_label("Username").fill(taken)
    page.get_by_label("First name").fill("Rita")
    page.get_by_label("Last name").fill("Register")
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.get_by_label("Password", exact=True).fill("short")
    expect(page.get_by_text(re.compile(r"At least \d+ characters"))).to_have_class(re.compile("unmet"))
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    expect(page.get_by_text(re.compile(r"At least \d+ characters"))).to_have_class(re.compile(r"\bmet"))
    page.get_by_label("Repeat the password").fill(PASSWORD)
    screenshot(page, "register", tmp_path)
    page.get_by_role("button", name="Register").click()
    username = page.get_by_label("Username")
    expect(username).to_have_attribute("aria-invalid", "true")
    error_id = username.get_attribute("aria-describedby").split()[-1]
    expect(page.locator(f"#{error_id}")).to_contain_text(re.compile("taken|exists|use", re.I))
    expect(page.get_by_label("First name")).to_have_value("Rita")
    expect(page.get_by_label("Password", exact=True)).to_have_value(PASSWORD)
    username.fill(name)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="Waiting for approval")).to_be_visible()
    users = platform.admin().get("/api/v1/users", params={"q": name}).json()["items"]
    assert [(user["username"], user["status"]) for user in users] == [(name, "pending")]


def test_wrong_password_and_a_locked_account_get_the_same_plain_answer(platform, console, unique):
    name = f"lck{unique}"
    platform.create_user(name)
    page = console.page
    sign_in(page, f"nobody{unique}", "whatever password")
    unknown = page.get_by_role("alert")
    expect(unknown).to_contain_text("not right")
    unknown_text = unknown.inner_text()
    for _ in range(6):  # beyond GATEHOUSE_LOGIN_MAX_FAILURES: locked
        page.get_by_label("Username or email").fill(name)
        page.get_by_label("Password", exact=True).fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
    page.get_by_label("Password", exact=True).fill(PASSWORD)  # right, but the account is locked
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
    expect(page.get_by_role("alert")).to_have_text(unknown_text)
    expect(page.get_by_label("Username or email")).to_have_value(name)


def test_a_session_that_ends_while_the_console_is_open_lands_on_sign_in(platform, console, unique):
    name = f"end{unique}"
    user, _ = platform.create_user(name)
    page = console.page
    sign_in(page, name, PASSWORD)
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    ended = platform.admin().delete(f"/api/v1/users/{user['id']}/sessions")
    assert ended.status_code in (200, 204), ended.text
    page.get_by_label("Current password").fill(PASSWORD)  # the page's next request
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat the password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Your session has ended")).to_be_visible()


def test_the_tenant_selector_switches_and_the_page_shows_the_other_tenant_at_once(platform, console, unique):
    admin = platform.admin()
    assert admin.post("/api/v1/tenancy/enable").status_code == 200
    tenant = admin.post("/api/v1/tenants", json={"name": f"t{unique}", "description": "browser test"})
    assert tenant.status_code == 201, tenant.text
    tenant = tenant.json()
    name = f"ten{unique}"
    user, _ = platform.create_user(name, role="admin", admin=admin)
    joined = admin.put(f"/api/v1/tenants/{tenant['id']}/users/{user['id']}", json={"role": "viewer"})
    assert joined.status_code in (200, 201), joined.text

    def roles():
        return {item["tenant_id"]: item["role"] for item in admin.get(f"/api/v1/users/{user['id']}/roles").json()["items"]}
    eventually(lambda: roles().get(tenant["id"]) == "viewer" and len(roles()) == 2, 20, 0.2, "both roles")

    page = console.page
    sign_in(page, name, PASSWORD)
    page.locator(".user-button").click()  # an admin starts on Users (the first area they may use)
    page.get_by_role("link", name="Profile").click()
    role = page.locator(".facts dt", has_text="Role in this tenant").locator("xpath=following-sibling::dd[1]")
    expect(role).to_have_text("admin")
    selector = page.get_by_label("Tenant")
    selector.select_option(label=f"t{unique}")
    expect(role).to_have_text("viewer")
    expect(selector).to_have_value(tenant["id"])
    page.reload()  # the session itself works in the chosen tenant now
    expect(page.locator(".facts dt", has_text="Role in this tenant").locator("xpath=following-sibling::dd[1]")).to_have_text("viewer")


@pytest.mark.parametrize("width", [1280, 375])
def test_the_pages_fit_widths_from_desktop_down_to_a_phone(platform, browser, unique, width, tmp_path):
    name = f"w{width}{unique}"
    platform.create_user(name)
    opened = Console(browser, platform.url, viewport={"width": width, "height": 800})
    try:
        page = opened.page
        page.goto("/sign-in")
        fits = "document.documentElement.scrollWidth <= window.innerWidth"
        assert page.evaluate(fits)
        screenshot(page, "sign-in" if width == 1280 else "sign-in-phone", tmp_path)
        sign_in(page, name, PASSWORD)
        expect(page.get_by_role("heading", name="Profile")).to_be_visible()
        expect(page.locator("table")).to_be_visible()
        assert page.evaluate(fits)
        if width == 375:
            screenshot(page, "profile-phone", tmp_path)
        page.goto("/profile")  # a fresh load: the keyboard starts at the skip link
        expect(page.get_by_role("heading", name="Profile")).to_be_visible()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    finally:
        opened.close()
    assert not opened.problems, opened.problems


def test_sessions_can_be_ended_from_the_profile_through_an_accessible_dialog(platform, console, unique):
    name = f"ses{unique}"
    _, first_script = platform.create_user(name)
    second_script = platform.api().login(name, PASSWORD)
    page = console.page
    sign_in(page, name, PASSWORD)
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(3)
    rows.filter(has_text="python-requests").first.get_by_role("button", name=re.compile("^End the session")).click()
    expect(page.get_by_text("The session was ended.")).to_be_visible()
    expect(rows).to_have_count(2)

    opener = page.get_by_role("button", name="End every other session")
    opener.click()
    dialog = page.get_by_role("dialog", name="End every other session?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # focus moved into the dialog
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()  # and back to what opened it
    opener.click()
    dialog.get_by_role("button", name="End them").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Every other session was ended.")).to_be_visible()
    expect(rows).to_have_count(1)
    expect(page.get_by_text("This is your only session.")).to_be_visible()
    for script in (first_script, second_script):
        assert script.get("/api/v1/me").status_code == 401


def test_users_change_their_own_names_on_the_profile(platform, console, unique):
    name = f"nam{unique}"
    platform.create_user(name)
    page = console.page
    sign_in(page, name, PASSWORD)
    expect(page.get_by_label("First name")).to_have_value("Test")
    page.get_by_label("First name").fill("")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_label("First name")).to_have_attribute("aria-invalid", "true")  # the gateway's 422, by field
    page.get_by_label("First name").fill("Renamed")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_text("Your name was saved.")).to_be_visible()
    expect(page.locator(".user-button")).to_contain_text("Renamed")
    users = platform.admin().get("/api/v1/users", params={"q": name}).json()["items"]
    assert [user["first_name"] for user in users] == ["Renamed"]
