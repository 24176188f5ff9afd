"""Journeys of the console's self-service pages, in real Chromium against the real platform:
(3) two-factor authentication from the QR page, (5) forgot password, (1b) an invitation link."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pyotp
from playwright.sync_api import expect

from tests.browser.helpers import fresh_totp, screenshot, sign_in, sign_out
from tests.harness import PASSWORD

NEW_PASSWORD = "another long passphrase 42"


def user_menu(page):
    return page.locator(".user-button")


def test_journey_3_two_factor_from_the_qr_page_then_codes_and_recovery_codes(platform, console, unique, tmp_path):
    name = f"tfa{unique}"
    platform.create_user(name)
    page = console.page
    page.goto("/sign-in")
    sign_in(page, name, PASSWORD)
    expect(user_menu(page)).to_be_visible()
    page.goto("/profile")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Set up two-factor authentication").click()

    qr = page.get_by_role("img", name=re.compile("QR code"))
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("(img) => img.naturalWidth > 0", qr.element_handle())  # a real image, not a broken one
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    screenshot(page, "two-factor-enrollment", tmp_path)
    used: set[str] = set()
    page.get_by_label("Code from the app").fill(fresh_totp(secret, used))
    page.get_by_role("button", name="Turn on two-factor authentication").click()

    codes = page.locator(".recovery-codes code")
    expect(codes).to_have_count(10)
    recovery = codes.all_inner_texts()
    expect(page.get_by_role("button", name="Copy codes")).to_be_visible()
    expect(page.get_by_role("button", name="Download codes")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download codes").click()
    saved = open(download.value.path()).read()
    assert all(code in saved for code in recovery)
    page.get_by_role("button", name="I have saved them, continue").click()
    expect(page.get_by_text("Recovery codes left:")).to_be_visible()
    sign_out(page)

    # Signing in now asks for a code: one from the app works.
    sign_in(page, name, PASSWORD)
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    code = fresh_totp(secret, used)
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Continue").click()
    expect(user_menu(page)).to_be_visible()
    sign_out(page)

    # The same code again is refused on the page; a recovery code then works.
    sign_in(page, name, PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("already used")
    expect(page.get_by_label("Code from your authenticator app")).to_have_value(code)  # what was typed stays
    page.get_by_role("button", name="Use a recovery code instead").click()
    page.get_by_label("Recovery code").fill(recovery[0])
    page.get_by_role("button", name="Continue").click()
    expect(user_menu(page)).to_be_visible()
    page.goto("/profile")
    expect(page.get_by_text("Recovery codes left:")).to_contain_text("9")


def test_journey_5_forgot_password_mail_reset_page_new_password(platform, console, smtp, unique, tmp_path):
    name = f"fgt{unique}"
    email = f"{name}@example.com"
    platform.create_user(name)
    page = console.page
    page.goto("/sign-in")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(f"nobody-{unique}@example.com")  # an unknown address: the same answer
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()
    unknown_answer = page.locator(".alert").inner_text().replace(f"nobody-{unique}@example.com", "ADDRESS")

    page.goto("/forgot-password")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your mail")).to_be_visible()
    assert page.locator(".alert").inner_text().replace(email, "ADDRESS") == unknown_answer

    link, token = smtp.link(smtp.wait_for(email)[0])
    parts = urlsplit(link)
    assert parts.path == "/reset-password" and parts.fragment == f"token={token}"
    page.goto(f"{parts.path}#{parts.fragment}")
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password").fill("short")
    expect(page.locator(".rule.unmet").first).to_be_visible()  # the policy, shown while typing
    screenshot(page, "reset-password", tmp_path)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat the password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("Your password was changed")).to_be_visible()
    assert token not in page.url

    sign_in(page, name, PASSWORD)  # the old password no longer works
    expect(page.get_by_role("alert")).to_contain_text("not right")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(user_menu(page)).to_be_visible()

    # The link worked once.
    page.goto(f"{parts.path}#{parts.fragment}")
    page.get_by_label("New password").fill(NEW_PASSWORD + "!")
    page.get_by_label("Repeat the password").fill(NEW_PASSWORD + "!")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()


def test_journey_1b_invitation_link_registers_with_the_locked_email_and_signs_in(platform, console, smtp, unique, tmp_path):
    email = f"inv{unique}@example.com"
    name = f"inv{unique}"
    admin = platform.admin()
    response = admin.post("/api/v1/invitations", json={"emails": [email], "role": "operator"})
    assert response.status_code == 201, response.text
    link, token = smtp.link(smtp.wait_for(email)[0])
    parts = urlsplit(link)
    assert parts.path == "/invite"

    page = console.page
    page.goto(f"{parts.path}#{parts.fragment}")
    expect(page.get_by_role("heading", name="Accept invitation")).to_be_visible()
    locked = page.get_by_label("Email")
    expect(locked).to_have_value(email)
    expect(locked).to_have_attribute("readonly", "")
    page.get_by_label("Username").fill(name)
    page.get_by_label("First name").fill("Ivy")
    page.get_by_label("Last name").fill("Invited")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD + "x")
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_text("The two passwords differ.").first).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value(name)  # nothing typed is lost
    page.get_by_label("Repeat the password").fill(PASSWORD)
    screenshot(page, "invitation", tmp_path)
    page.get_by_role("button", name="Create my account").click()
    expect(user_menu(page)).to_be_visible()
    expect(user_menu(page)).to_contain_text("Ivy Invited")
    assert token not in page.url

    users = admin.get("/api/v1/users", params={"q": name}).json()["items"]
    assert [(user["username"], user["email"], user["status"], user["role"]) for user in users] == [
        (name, email, "active", "operator")]

    other = console.new_page()
    other.goto(f"{parts.path}#{parts.fragment}")
    expect(other.get_by_role("heading", name="This invitation was already used")).to_be_visible()
    other.goto("/invite#token=not-a-real-token")
    expect(other.get_by_role("heading", name="This invitation link is not valid")).to_be_visible()


def test_an_expired_invitation_link_gets_a_clear_page(platform, console, smtp, unique):
    email = f"late{unique}@example.com"
    admin = platform.admin()
    response = admin.post("/api/v1/invitations", json={"emails": [email], "role": "viewer"})
    assert response.status_code == 201, response.text
    invitation_id = admin.get("/api/v1/invitations", params={"limit": 200}).json()["items"]
    invitation_id = next(item["id"] for item in invitation_id if item["email"] == email)
    _, token = smtp.link(smtp.wait_for(email)[0])
    platform.sql("identity", "UPDATE identity_invitations SET expires_at = '2000-01-01 00:00:00' WHERE id = :id",
                 id=invitation_id)
    page = console.page
    page.goto(f"/invite#token={token}")
    expect(page.get_by_role("heading", name="This invitation has expired")).to_be_visible()
    expect(page.get_by_text("Ask your administrator to send a new one.")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_count(0)


def test_a_throttled_address_is_told_plainly_when_to_retry(platform, console, unique):
    """After too many failed sign-ins from one address the page says so, with the wait, and
    still does not say whether the account exists."""
    from kernel.config import Config

    limit = Config.from_env(platform.env).integer("GATEHOUSE_LOGIN_IP_MAX_FAILURES")
    same_address = platform.api(client_ip=console.client_ip)
    for attempt in range(limit):
        failed = same_address.post("/api/v1/auth/login", json={"login": f"nobody{unique}{attempt}", "password": "wrong"})
        if failed.status_code == 429:
            break
    page = console.page
    sign_in(page, f"nobody{unique}", "wrong password")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed sign-ins from this address")
    expect(alert).to_contain_text(re.compile(r"Try again in \d+ (seconds|minutes)"))
    expect(page.get_by_label("Username or email")).to_have_value(f"nobody{unique}")


def test_two_factor_codes_renewed_factor_replaced_then_removed_from_the_profile(platform, console, unique):
    name = f"rep{unique}"
    _, api = platform.create_user(name)
    page = console.page
    sign_in(page, name, PASSWORD)
    expect(page.get_by_role("heading", name="Profile")).to_be_visible()
    started = api.post("/api/v1/me/2fa/enrollment", json={"password": PASSWORD})
    assert started.status_code == 200, started.text
    old_secret, used = started.json()["secret"], set()
    assert api.post("/api/v1/me/2fa/enrollment/confirm", json={"code": fresh_totp(old_secret, used)}).status_code == 200
    page.reload()
    expect(page.get_by_text("Recovery codes left:")).to_contain_text("10")

    page.get_by_role("button", name="New recovery codes").click()
    page.get_by_label("Your password").fill("not my password")
    page.get_by_role("button", name="Make new codes").click()
    expect(page.get_by_label("Your password")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Make new codes").click()
    expect(page.locator(".recovery-codes code")).to_have_count(10)
    page.get_by_role("button", name="I have saved them").click()
    expect(page.get_by_text("the old ones no longer work")).to_be_visible()

    page.get_by_role("button", name="Replace authenticator").click()
    page.get_by_role("button", name="Confirm with a code instead").click()
    page.get_by_label("Current code from your authenticator app").fill(fresh_totp(old_secret, used))
    page.get_by_role("button", name="Start replacing").click()
    new_secret = page.locator("#totp-secret").inner_text().strip()
    assert new_secret != old_secret
    page.get_by_label("Code from the app").fill(pyotp.TOTP(new_secret).now())
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.locator(".recovery-codes code")).to_have_count(10)
    page.get_by_role("button", name="I have saved them, continue").click()
    expect(page.get_by_text("Two-factor authentication is on.")).to_be_visible()

    page.get_by_role("button", name="Turn off").click()
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Turn off").click()
    expect(page.get_by_text("Two-factor authentication is off.")).to_be_visible()
    assert api.get("/api/v1/me/2fa").json()["enrolled"] is False
