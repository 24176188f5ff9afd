"""The Users pages' details, in real headless Chromium against the real platform: server-side paging and
an empty search, the mailed reset link, disabling an enrolled user's 2FA, the first admin's protection
seen by another administrator. Users are set up through the API; the page is clicked only for what each
test is about. Also saves the forgot-password, 2FA sign-in step and "Not allowed" screenshots."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.helpers import expect_signed_in, screenshot, sign_in
from tests.browser.test_users_journeys import admin_console, notice, open_users, row, row_action, search
from tests.harness import ADMIN_USERNAME, PASSWORD, register
from tests.integration.test_rbac import assign
from tests.integration.test_twofactor import enroll

PAGE_SIZE = 25  # the Users table's (gateway/console/static/pages/users.js)


def test_the_table_pages_on_the_server_and_an_empty_search_says_what_to_do(platform, console, unique):
    prefix = f"pg{unique}"
    names = [f"{prefix}{index:02d}" for index in range(PAGE_SIZE + 1)]  # pending registrations: cheap
    for name in names:
        assert register(platform.api(), name).status_code == 201
    page = admin_console(console)
    open_users(page)
    search(page, prefix)
    rows, pager = page.locator("tbody tr"), page.locator(".pager")
    expect(rows).to_have_count(PAGE_SIZE)
    expect(pager).to_contain_text(f"{PAGE_SIZE + 1} users")
    expect(pager.get_by_role("button", name="Previous")).to_be_disabled()
    first_page = [rows.nth(index).get_attribute("data-user") for index in range(PAGE_SIZE)]
    pager.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(1)
    expect(pager.get_by_role("button", name="Next")).to_be_disabled()
    assert sorted(first_page + [rows.first.get_attribute("data-user")]) == names  # each once, none lost
    pager.get_by_role("button", name="Previous").click()
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.first).to_have_attribute("data-user", first_page[0])

    page.get_by_label("Search users").fill(f"nobody{unique}")
    empty = page.locator(".empty")
    expect(empty).to_contain_text(f"No user matches “nobody{unique}”")
    expect(empty).to_contain_text("Check the spelling")
    expect(rows).to_have_count(0)
    empty.get_by_role("button", name="show everyone").click()
    expect(page.get_by_label("Search users")).to_have_value("")
    expect(rows.first).to_be_visible()


def test_a_reset_by_mailed_link_sends_the_user_a_link(platform, smtp, console, another_console, unique, tmp_path):
    name = f"rml{unique}"
    user, _ = platform.create_user(name, role="viewer")
    page = admin_console(console)
    open_users(page)
    search(page, name)
    row_action(page, name, "Reset password")
    dialog = page.get_by_role("dialog", name=f"Reset the password of {name}")
    expect(dialog.get_by_label("Mail a reset link", exact=False)).to_be_checked()  # the default
    dialog.get_by_role("button", name="Send link").click()
    expect(notice(page)).to_contain_text(f"A reset link is on its way to {user['email']}")
    [mail] = smtp.wait_for(user["email"])
    link, _ = smtp.link(mail)
    assert link.startswith(f"{platform.url}/reset-password#token="), link

    # what the user would use unprompted: the forgot-password page (its screenshot)
    forgot = another_console.page
    forgot.goto("/forgot-password")
    expect(forgot.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    screenshot(forgot, "forgot-password", tmp_path)


def test_disable_2fa_turns_an_enrolled_users_factor_off(platform, console, another_console, unique, tmp_path):
    name = f"d2f{unique}"
    user, api = platform.create_user(name, role="viewer")
    _, recovery_codes = enroll(api)

    # the user's own console: the second sign-in step, then (no admin.users) the Users page is not allowed
    own = another_console.page
    sign_in(own, name, PASSWORD)
    expect(own.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    screenshot(own, "sign-in-second-factor", tmp_path)
    own.get_by_role("button", name="Use a recovery code instead").click()
    own.get_by_label("Recovery code").fill(recovery_codes[0])
    own.get_by_role("button", name="Continue").click()
    expect_signed_in(own)
    own.goto("/users")
    expect(own.get_by_role("heading", name="Not allowed")).to_be_visible()
    screenshot(own, "not-allowed", tmp_path)

    page = admin_console(console)
    open_users(page)
    search(page, name)
    target = row(page, name)
    expect(target.locator("td").nth(6)).to_have_text("On")
    row_action(page, name, "Disable 2FA")
    expect(notice(page)).to_contain_text(f"2FA of {name} is off")
    expect(target.locator("td").nth(6)).to_have_text("Off")
    assert platform.admin().get(f"/api/v1/users/{user['id']}").json()["totp_enrolled"] is False
    signed_in = platform.api().post("/api/v1/auth/login", json={"login": name, "password": PASSWORD})
    assert signed_in.status_code == 200 and not signed_in.json().get("second_factor_required"), signed_in.text


def test_another_admin_sees_why_the_first_admin_is_protected(platform, console, unique):
    name = f"sa{unique}"
    other, _ = platform.create_user(name, role="admin")
    assert assign(platform.admin(), other["id"], "super_admin").status_code == 200  # may do anything else
    page = console.page
    sign_in(page, name, PASSWORD)
    expect_signed_in(page)
    open_users(page)
    search(page, ADMIN_USERNAME)
    first = row(page, ADMIN_USERNAME)
    expect(first).to_contain_text("first admin")
    first.get_by_text("Actions").click()
    for action in ("Suspend", "Remove"):
        button = first.get_by_role("button", name=action, exact=True)
        expect(button).to_be_disabled()
        reason = page.locator(f'[id="{button.get_attribute("aria-describedby")}"]')
        expect(reason).to_have_text("The first administrator is protected: they cannot be suspended or removed.")
    expect(first.get_by_role("button", name="Edit", exact=True)).to_be_enabled()  # the rest stays available
