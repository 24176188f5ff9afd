"""User administration in the console (the Users pages), driven in real headless Chromium
against the real platform: invitations read from the test SMTP server, approvals checked
with a real LDAP bind, suspension seen by the suspended user's own open console."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import expect_signed_in, screenshot, sign_in
from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD, eventually, register
from tests.ldap_tools import ldapwhoami

NEW_PASSWORD = "a brand new passphrase 42"


def admin_console(console) -> Page:
    page = console.page
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect_signed_in(page)
    return page


def open_users(page: Page) -> None:
    page.get_by_role("navigation", name="Areas").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", level=1)).to_be_visible()
    expect(page.get_by_role("table", name="Users")).to_have_attribute("aria-busy", "false")


def search(page: Page, text: str) -> None:
    """Types into the search box and waits until the table shows only matches."""
    page.get_by_label("Search users").fill(text)
    expect(page.locator("tbody tr").filter(has_not_text=text)).to_have_count(0)


def row(page: Page, name: str):
    return page.locator(f'tr[data-user="{name}"]')


def row_action(page: Page, name: str, action: str) -> None:
    target = row(page, name)
    target.get_by_text("Actions").click()
    target.get_by_role("button", name=action, exact=True).click()


def notice(page: Page):
    return page.locator(".alert-success")


def test_admin_invites_two_addresses_and_an_invitee_registers_through_the_mailed_link(
        platform, smtp, console, another_console, unique, tmp_path):
    page = admin_console(console)
    open_users(page)
    page.get_by_role("button", name="Invite users").click()
    dialog = page.get_by_role("dialog", name="Invite users")
    first, second = f"ada-{unique}@example.com", f"bob-{unique}@example.com"
    dialog.get_by_label("Email addresses").fill(f"{first}, not-an-address")
    dialog.get_by_label("Role").select_option("operator")
    dialog.get_by_role("button", name="Send invitations").click()
    # a bad address refuses the lot, named next to the field; what was typed stays
    expect(dialog.locator(".field-error")).to_contain_text("not-an-address")
    expect(dialog.get_by_label("Email addresses")).to_have_value(f"{first}, not-an-address")
    screenshot(page, "invite-dialog", tmp_path)
    dialog.get_by_label("Email addresses").fill(f"{first}\n{second}")
    dialog.get_by_role("button", name="Send invitations").click()
    expect(notice(page)).to_contain_text(f"Invited {first}, {second} as operator")

    [mail] = smtp.wait_for(first)
    link, _ = smtp.link(mail)
    assert link.startswith(f"{platform.url}/invite#token="), link  # GATEHOUSE_PUBLIC_URL follows the port
    invitee = another_console.page
    invitee.goto(link)
    email = invitee.get_by_label("Email")
    expect(email).to_have_value(first)
    expect(email).to_have_attribute("readonly", "")
    invitee.get_by_label("Username").fill(f"ada{unique}")
    invitee.get_by_label("First name").fill("Ada")
    invitee.get_by_label("Last name").fill("Lovelace")
    invitee.locator("input[name=password]").fill(PASSWORD)
    invitee.get_by_label("Repeat the password").fill(PASSWORD)
    invitee.get_by_role("button", name=re.compile("Register|Create|Accept")).click()
    # ends signed in, or on the sign-in page
    expect(invitee.locator(".user-button").or_(invitee.get_by_role("heading", name="Sign in"))).to_be_visible()
    if invitee.get_by_role("heading", name="Sign in").is_visible():
        sign_in(invitee, f"ada{unique}", PASSWORD)
    expect_signed_in(invitee)

    # the admin's table shows them active with the invited role; the other invitation waits
    page.reload()
    search(page, f"ada-{unique}")
    expect(row(page, f"ada{unique}")).to_have_attribute("data-status", "active")
    expect(row(page, f"ada{unique}").locator("td").nth(2)).to_have_text("operator")
    page.get_by_role("link", name="Invitations").click()
    pending = page.locator(f'tr[data-invitation="{second}"]')
    expect(pending).to_contain_text("pending")
    expect(page.locator(f'tr[data-invitation="{first}"]')).to_have_count(0)  # accepted: not pending any more
    pending.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog", name=f"Revoke the invitation of {second}?").get_by_role("button", name="Revoke").click()
    expect(notice(page)).to_contain_text(f"The invitation of {second} is revoked")
    expect(pending).to_have_count(0)
    assert smtp.messages_to(second), "the second address got its mail too"


@pytest.fixture
def directory(platform, slapd):
    """The platform's LDAP sync writes to the test slapd (as tests/integration/test_sync.py's)."""
    admin = platform.admin()
    answer = admin.put("/api/v1/settings/ldap", json={
        "url": slapd.url, "bind_dn": slapd.admin_dn, "password": slapd.admin_password, "base_dn": slapd.base_dn,
        "login_shell": "/bin/zsh", "realm_bind_dn": slapd.reader_dn, "realm_bind_password": slapd.reader_password})
    assert answer.status_code == 200, answer.text
    return slapd


def test_admin_finds_a_registration_approves_it_with_a_group_and_the_user_binds_to_ldap(
        platform, directory, console, another_console, unique, tmp_path):
    admin = platform.admin()
    group = f"team{unique}"
    assert admin.post("/api/v1/groups", json={"cn": group, "description": "browser test"}).status_code == 201
    name = f"reg{unique}"
    # two registrations with the same last name: the search finds both, sorting by name orders them
    assert register(platform.api(), name, first_name="Alan", last_name=f"Hopper{unique}").status_code == 201
    assert register(platform.api(), f"reh{unique}", first_name="Zoe", last_name=f"Hopper{unique}").status_code == 201

    page = admin_console(console)
    open_users(page)
    pending_chip = page.get_by_role("button", name=re.compile(r"^Pending \(\d+\)$"))
    expect(pending_chip).to_be_visible()  # pending users are one click away, with their count
    pending_chip.click()
    search(page, f"Hopper{unique}")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_role("button", name="Name", exact=False).first.click()  # sort by name, A to Z
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Name")
    expect(rows.first).to_have_attribute("data-user", name)  # Alan before Zoe
    page.get_by_role("button", name="Name", exact=False).first.click()  # and back
    expect(rows.first).to_have_attribute("data-user", f"reh{unique}")
    screenshot(page, "users-table", tmp_path)

    row_action(page, name, "Approve")
    dialog = page.get_by_role("dialog", name=f"Approve {name}")
    dialog.get_by_label("Role").select_option("viewer")
    dialog.get_by_label(group).check()
    dialog.get_by_role("button", name="Approve").click()
    expect(notice(page)).to_contain_text(f"{name} is approved and in {group}")
    expect(row(page, name)).to_have_count(0)  # no longer pending

    user_page = another_console.page
    sign_in(user_page, name, PASSWORD)
    expect_signed_in(user_page)
    dn = f"uid={name},ou=people,{directory.base_dn}"
    eventually(lambda: ldapwhoami(directory.url, dn, PASSWORD) == 0, timeout=60, interval=0.5,
               message="the approved user binding to the directory")
    groups = admin.get(f"/api/v1/users/{row_user_id(admin, name)}").json()["groups"]
    assert group in groups and "ldapusers" in groups, groups


def row_user_id(admin, username: str) -> str:
    [user] = [u for u in admin.get("/api/v1/users", params={"q": username}).json()["items"] if u["username"] == username]
    return user["id"]


def test_a_suspended_users_open_console_lands_on_sign_in_and_works_again_after_reactivation(
        platform, console, another_console, unique):
    name = f"sus{unique}"
    platform.create_user(name, role="viewer")
    user_page = another_console.page
    sign_in(user_page, name, PASSWORD)
    expect_signed_in(user_page)

    page = admin_console(console)
    open_users(page)
    search(page, name)
    row_action(page, name, "Suspend")
    expect(notice(page)).to_contain_text(f"{name} is suspended")
    expect(row(page, name)).to_have_attribute("data-status", "suspended")

    # the open console's next action (its profile page asks the API) lands on the sign-in page
    user_page.locator(".user-button").click()
    user_page.get_by_role("link", name="Profile").click()
    expect(user_page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(user_page, name, PASSWORD)
    expect(user_page.get_by_role("alert")).to_contain_text(re.compile("cannot sign in|not active", re.I))

    row_action(page, name, "Reactivate")
    expect(notice(page)).to_contain_text(f"{name} is active again")
    sign_in(user_page, name, PASSWORD)
    expect_signed_in(user_page)


def test_without_admin_users_there_is_no_users_entry_and_its_url_says_not_allowed(platform, console, unique):
    name = f"opr{unique}"
    platform.create_user(name, role="operator")
    page = console.page
    sign_in(page, name, PASSWORD)
    expect_signed_in(page)
    expect(page.get_by_role("navigation", name="Areas").get_by_role("link", name="Users")).to_have_count(0)
    page.goto("/users")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_role("table", name="Users")).to_have_count(0)


def test_create_user_shows_the_password_once_and_it_signs_in_and_must_be_changed(
        platform, console, another_console, unique, tmp_path):
    page = admin_console(console)
    open_users(page)
    page.get_by_role("button", name="Create user").click()
    dialog = page.get_by_role("dialog", name="Create user")
    name = f"new{unique}"
    dialog.get_by_label("Username").fill(name)
    dialog.get_by_label("Email").fill(f"{ADMIN_USERNAME}@invalid")  # refused, then corrected below
    dialog.get_by_label("First name").fill("Katherine")
    dialog.get_by_label("Last name").fill("Johnson")
    dialog.get_by_label("Role").select_option("operator")
    taken = platform.admin().get("/api/v1/users", params={"q": ADMIN_USERNAME}).json()["items"][0]["email"]
    dialog.get_by_label("Email").fill(taken)
    dialog.get_by_role("button", name="Create user").click()
    expect(dialog.locator(".field-error")).to_be_visible()  # the taken email, named next to its field
    expect(dialog.get_by_label("Username")).to_have_value(name)  # typing kept
    dialog.get_by_label("Email").fill(f"{name}@example.com")
    dialog.get_by_role("button", name="Create user").click()
    result = page.get_by_role("dialog", name=f"{name} is created")
    secret = result.locator("[data-secret=generated-password]")
    expect(secret).to_be_visible()
    password = secret.inner_text().strip()
    assert len(password) >= 12
    expect(result.get_by_role("button", name="Copy")).to_be_visible()
    screenshot(page, "create-user-result", tmp_path)
    result.get_by_role("button", name="Done").click()
    expect(page.locator("[data-secret=generated-password]")).to_have_count(0)  # shown once
    assert password not in page.content()

    user_page = another_console.page
    sign_in(user_page, name, password)
    expect(user_page.get_by_role("heading", name="Change your password")).to_be_visible()
    user_page.get_by_label("Current password").fill(password)
    user_page.get_by_label("New password").fill(NEW_PASSWORD)
    user_page.get_by_label("Repeat the password").fill(NEW_PASSWORD)
    user_page.get_by_role("button", name=re.compile("Change|Save|Set")).click()
    expect_signed_in(user_page)


def test_a_stale_edit_is_refused_with_the_current_values_and_the_typing_kept(platform, console, unique, tmp_path):
    name = f"edt{unique}"
    user, _ = platform.create_user(name, role="viewer")
    page = admin_console(console)
    open_users(page)
    search(page, name)
    row_action(page, name, "Edit")
    dialog = page.get_by_role("dialog", name=f"Edit {name}")
    expect(dialog.get_by_label("First name")).to_have_value("Test")
    dialog.get_by_label("First name").fill("Mine")
    screenshot(page, "edit-dialog", tmp_path)
    # someone else changes the user meanwhile
    assert platform.admin().patch(f"/api/v1/users/{user['id']}", json={"last_name": "Theirs"}).status_code == 200
    dialog.get_by_role("button", name="Save changes").click()
    expect(dialog.get_by_role("alert").first).to_contain_text("Someone else changed this user")
    expect(dialog.locator("[data-current=last_name]")).to_have_text("Theirs")
    expect(dialog.get_by_label("First name")).to_have_value("Mine")  # the typing is kept
    expect(dialog.get_by_label("Last name")).to_have_value("Theirs")  # a field left alone takes their value
    screenshot(page, "edit-conflict", tmp_path)
    dialog.get_by_role("button", name="Save changes").click()  # now based on their version
    expect(notice(page)).to_contain_text(f"{name} is saved")
    saved = platform.admin().get(f"/api/v1/users/{user['id']}").json()
    assert (saved["first_name"], saved["last_name"]) == ("Mine", "Theirs")


def test_protected_rows_say_why_an_action_is_unavailable(platform, console):
    page = admin_console(console)
    open_users(page)
    search(page, ADMIN_USERNAME)
    own = row(page, ADMIN_USERNAME)
    own.get_by_text("Actions").click()
    expect(own.get_by_role("button", name="Suspend", exact=True)).to_be_disabled()
    expect(own.get_by_role("button", name="Remove", exact=True)).to_be_disabled()
    expect(own.locator(".why").first).to_contain_text("your own account")


def test_row_actions_require_and_cancel_2fa_set_a_random_password_and_remove(platform, console, another_console,
                                                                           unique, tmp_path):
    name = f"row{unique}"
    user, _ = platform.create_user(name, role="viewer")
    admin = platform.admin()
    page = admin_console(console)
    open_users(page)
    search(page, name)
    target = row(page, name)
    expect(target.locator("td").nth(6)).to_have_text("Off")
    row_action(page, name, "Require 2FA")
    expect(notice(page)).to_contain_text(f"{name} must set up 2FA")
    expect(target.locator("td").nth(6)).to_have_text("Required, not set up")
    assert admin.get(f"/api/v1/users/{user['id']}").json()["totp_required"] is True
    target.get_by_text("Actions").click()
    expect(target.get_by_role("button", name="Require 2FA", exact=True)).to_have_count(0)  # only what applies
    expect(target.get_by_role("button", name="Disable 2FA", exact=True)).to_have_count(0)  # not enrolled
    target.get_by_role("button", name="Cancel 2FA requirement", exact=True).click()
    expect(notice(page)).to_contain_text(f"{name} no longer has to use 2FA")
    assert admin.get(f"/api/v1/users/{user['id']}").json()["totp_required"] is False

    row_action(page, name, "Reset password")
    dialog = page.get_by_role("dialog", name=f"Reset the password of {name}")
    dialog.get_by_label(re.compile("Set a random password")).check()
    dialog.get_by_role("button", name="Set password").click()
    shown = page.get_by_role("dialog", name=f"New password of {name}").locator("[data-secret=generated-password]")
    password = shown.inner_text().strip()
    assert len(password) >= 12
    page.get_by_role("button", name="Done").click()
    user_page = another_console.page
    sign_in(user_page, name, PASSWORD)  # the old password no longer works
    expect(user_page.get_by_role("alert")).to_be_visible()
    sign_in(user_page, name, password)
    expect(user_page.get_by_role("heading", name="Change your password")).to_be_visible()

    row_action(page, name, "Remove")
    dialog = page.get_by_role("dialog", name=f"Remove {name}?")
    expect(dialog).to_contain_text("The audit trail keeps their past actions")
    dialog.get_by_role("button", name=f"Remove {name}").click()
    expect(notice(page)).to_contain_text(f"{name} is removed")
    expect(target).to_have_count(0)
    assert admin.get(f"/api/v1/users/{user['id']}").status_code == 404


def test_inviting_without_smtp_shows_how_to_set_it_up_and_keeps_the_addresses(platform, smtp, console, unique):
    admin = platform.admin()
    assert admin.delete("/api/v1/settings/smtp").status_code == 204
    try:
        page = admin_console(console)
        open_users(page)
        page.get_by_role("button", name="Invite users").click()
        dialog = page.get_by_role("dialog", name="Invite users")
        dialog.get_by_label("Email addresses").fill(f"nosmtp-{unique}@example.com")
        dialog.get_by_role("button", name="Send invitations").click()
        expect(dialog.locator(".smtp-help")).to_contain_text("Mail is not set up yet")
        expect(dialog.locator(".smtp-help")).to_contain_text("PUT /api/v1/settings/smtp")
        expect(dialog.get_by_label("Email addresses")).to_have_value(f"nosmtp-{unique}@example.com")
    finally:
        assert admin.put("/api/v1/settings/smtp", json=smtp.smtp_settings()).status_code == 200


def test_invitations_are_listed_and_resent_and_super_admins_see_every_tenant(platform, smtp, console, unique, tmp_path):
    admin = platform.admin()
    address = f"again-{unique}@example.com"
    assert admin.post("/api/v1/invitations", json={"emails": [address], "role": "viewer"}).status_code == 201
    smtp.wait_for(address)
    page = admin_console(console)
    open_users(page)
    page.get_by_role("link", name="Invitations").click()
    invitation = page.locator(f'tr[data-invitation="{address}"]')
    expect(invitation).to_contain_text("viewer")
    screenshot(page, "invitations", tmp_path)
    invitation.get_by_role("button", name="Resend").click()
    expect(notice(page)).to_contain_text(f"A new link is on its way to {address}")
    smtp.wait_for(address, count=2)

    name = f"all{unique}"
    platform.create_user(name, role="operator")
    page.get_by_role("link", name="All tenants").click()
    page.get_by_label("Search").fill(name)
    found = page.locator(f'tr[data-user="{name}"]')
    expect(found.locator(".assignments li")).to_have_count(1)
    expect(found.locator(".assignments")).to_contain_text("operator")
    screenshot(page, "users-all-tenants", tmp_path)


def test_an_administrator_who_is_not_a_super_admin_has_no_all_tenants_view_nor_2fa_actions(platform, console, unique):
    name = f"adm{unique}"
    platform.create_user(name, role="admin")
    target = f"tgt{unique}"
    platform.create_user(target, role="viewer")
    page = console.page
    sign_in(page, name, PASSWORD)
    expect_signed_in(page)
    open_users(page)
    expect(page.get_by_role("link", name="All tenants")).to_have_count(0)
    search(page, target)
    row(page, target).get_by_text("Actions").click()
    expect(row(page, target).get_by_role("button", name="Suspend", exact=True)).to_be_enabled()
    expect(row(page, target).get_by_role("button", name="Require 2FA", exact=True)).to_have_count(0)  # super admins'
    page.goto("/users/all-tenants")
    expect(page.get_by_role("alert")).to_contain_text("Not allowed")


def test_the_users_page_is_usable_at_a_phones_width(platform, browser, unique, tmp_path):
    from tests.browser.conftest import Console

    name = f"pho{unique}"
    platform.create_user(name, role="viewer")
    phone = Console(browser, platform.url, viewport={"width": 390, "height": 844})
    try:
        page = phone.page
        sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
        expect(page.locator(".user-button")).to_be_visible()
        page.goto("/users")
        search(page, name)
        expect(row(page, name)).to_be_visible()
        # the page itself does not scroll sideways (the table scrolls in its own box)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        screenshot(page, "users-phone", tmp_path)
        row(page, name).get_by_text("Actions").click()
        row(page, name).get_by_role("button", name="Edit", exact=True).click()
        dialog = page.get_by_role("dialog", name=f"Edit {name}")
        expect(dialog.get_by_label("First name")).to_be_in_viewport()
    finally:
        phone.close()
    assert not phone.problems, "\n".join(phone.problems)


def test_switching_tenant_shows_that_tenants_users_at_once(platform, console, unique):
    admin = platform.admin()
    assert admin.post("/api/v1/tenancy/enable").status_code == 200
    tenant = admin.post("/api/v1/tenants", json={"name": f"u{unique}", "description": "browser test"})
    assert tenant.status_code == 201, tenant.text
    tenant = tenant.json()
    member, _ = platform.create_user(f"mem{unique}", role="viewer")
    joined = admin.put(f"/api/v1/tenants/{tenant['id']}/users/{member['id']}", json={"role": "operator"})
    assert joined.status_code in (200, 201), joined.text
    outsider = f"out{unique}"
    platform.create_user(outsider, role="viewer")  # in the default tenant only

    page = admin_console(console)
    open_users(page)
    search(page, unique)
    expect(row(page, outsider)).to_be_visible()
    expect(row(page, f"mem{unique}").locator("td").nth(2)).to_have_text("viewer")
    page.get_by_label("Tenant").select_option(label=f"u{unique}")
    expect(page.get_by_label("Tenant")).to_have_value(tenant["id"])
    expect(row(page, f"mem{unique}").locator("td").nth(2)).to_have_text("operator")  # their role there
    expect(row(page, outsider)).to_have_count(0)  # not a member of that tenant


def test_row_menus_and_dialogs_work_from_the_keyboard(platform, console, unique):
    name = f"key{unique}"
    platform.create_user(name, role="viewer")
    page = admin_console(console)
    open_users(page)
    search(page, name)
    menu = row(page, name).locator("summary")
    menu.focus()
    page.keyboard.press("Enter")
    edit = row(page, name).get_by_role("button", name="Edit", exact=True)
    expect(edit).to_be_visible()
    page.keyboard.press("Escape")  # closes the menu, focus stays on its button
    expect(edit).to_be_hidden()
    expect(menu).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(edit).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=f"Edit {name}")
    expect(dialog.get_by_label("First name")).to_have_value("Test")
    expect(dialog.locator(":focus")).to_have_count(1)  # focus moved into the dialog
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(menu).to_be_focused()  # back where the user was


def test_the_edit_dialog_changes_the_role_and_narrows_its_scope(platform, console, unique):
    name = f"scp{unique}"
    user, _ = platform.create_user(name, role="viewer")
    page = admin_console(console)
    open_users(page)
    search(page, name)
    row_action(page, name, "Edit")
    dialog = page.get_by_role("dialog", name=f"Edit {name}")
    dialog.get_by_label("Role").select_option("operator")
    dialog.get_by_label("VMs and containers (VMID)").fill("101, 102")
    dialog.get_by_role("button", name="Save changes").click()
    expect(notice(page)).to_contain_text(f"{name} is saved")
    expect(row(page, name).locator("td").nth(2)).to_have_text("operator")
    [assignment] = [a for a in platform.admin().get(f"/api/v1/users/{user['id']}/roles").json()["items"]
                    if a["role"] == "operator"]
    assert assignment["scope"]["vms"] == ["101", "102"], assignment
    row_action(page, name, "Edit")  # the dialog shows the stored scope
    expect(page.get_by_role("dialog", name=f"Edit {name}").get_by_label("VMs and containers (VMID)")).to_have_value("101, 102")


def test_a_status_change_based_on_a_stale_row_is_refused_and_the_row_refreshed(platform, console, unique):
    name = f"stl{unique}"
    user, _ = platform.create_user(name, role="viewer")
    page = admin_console(console)
    open_users(page)
    search(page, name)
    changed = platform.admin().patch(f"/api/v1/users/{user['id']}", json={"last_name": "Renamed"})
    assert changed.status_code == 200
    row_action(page, name, "Suspend")
    expect(page.get_by_role("alert")).to_contain_text("Someone else changed this record")
    expect(row(page, name)).to_contain_text("Renamed")  # the row as it is now
    # the refreshed list does not wipe the refusal away (it did, and CI missed the message)
    expect(page.get_by_role("alert")).to_contain_text("Someone else changed this record")
    assert platform.admin().get(f"/api/v1/users/{user['id']}").json()["status"] == "active"
    row_action(page, name, "Suspend")
    expect(notice(page)).to_contain_text(f"{name} is suspended")
