"""Roles and Groups in the console, driven in real headless Chromium against the real platform:
a custom role made in the permission matrix, edited there, and assigned with a storage scope (its
holder then sees only the areas it allows; tests/browser/test_inventory_settings.py follows such a
holder into a scoped inventory), and a group made with the suggested GID whose member reaches the
posixGroup in slapd, read with OpenLDAP's own ldapsearch."""
from __future__ import annotations

import re
import subprocess
import tempfile

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import expect_signed_in, screenshot, sign_in
from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD, eventually


def admin_console(console) -> Page:
    page = console.page
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect_signed_in(page)
    return page


def nav(page: Page):
    return page.get_by_role("navigation", name="Areas")


def notice(page: Page):
    return page.locator(".alert-success")


def test_a_custom_role_made_in_the_matrix_and_assigned_with_a_storage_scope_limits_its_holder(
        platform, console, another_console, unique, tmp_path):
    admin = platform.admin()
    holder, _ = platform.create_user(f"sto{unique}")
    page = admin_console(console)
    nav(page).get_by_role("link", name="Roles").click()
    expect(page.get_by_role("heading", name="Roles", level=1)).to_be_visible()
    table = page.get_by_role("table", name="Roles")
    for name in ("super_admin", "admin", "operator", "viewer"):
        expect(table.locator(f'tr[data-role="{name}"]')).to_contain_text("built-in")
    screenshot(page, "roles", tmp_path)

    # a built-in role cannot be deleted: the API's reason is shown in the dialog
    page.get_by_role("button", name="Delete operator").click()
    dialog = page.get_by_role("dialog", name="Delete the role operator?")
    dialog.get_by_role("button", name="Delete role").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Built-in roles cannot be changed or deleted")
    dialog.get_by_role("button", name="Cancel").click()
    expect(table.locator('tr[data-role="operator"]')).to_have_count(1)

    # a new role from the matrix: platform settings cannot be ticked, a missing permission is named
    page.get_by_role("link", name="New role").click()
    role = f"storage-desk{unique}"
    page.get_by_label("Name").fill(role)
    page.get_by_label("Description").fill("Roles and groups, storages only")
    settings = page.get_by_label("admin.settings")
    expect(settings).to_be_disabled()
    expect(page.locator(".matrix-item.unavailable")).to_contain_text("only super admins hold it")
    page.get_by_role("button", name="Create role").click()
    expect(page.locator(".matrix .field-error")).to_contain_text("at least one permission")
    expect(page.get_by_label("Name")).to_have_value(role)  # what was typed stays
    for permission in ("admin.rbac", "storage.view", "vm.view"):
        page.get_by_label(permission, exact=True).check()
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_role("heading", name=re.compile(role), level=1)).to_be_visible()
    expect(notice(page)).to_contain_text("The role is created")
    expect(page.get_by_label("storage.view", exact=True)).to_be_checked()
    expect(page.get_by_label("vm.start", exact=True)).not_to_be_checked()

    # edited in the matrix: one permission unticked, another ticked, saved; the API has the change
    page.get_by_label("vm.view", exact=True).uncheck()
    page.get_by_label("node.view", exact=True).check()
    page.get_by_role("button", name="Save role").click()
    expect(notice(page)).to_contain_text("The role is saved")
    expect(page.get_by_label("node.view", exact=True)).to_be_checked()
    saved = admin.get(f"/api/v1/roles/{page.url.split('?')[0].rsplit('/', 1)[-1]}").json()
    assert saved["name"] == role, saved
    assert sorted(saved["permissions"]) == ["admin.rbac", "node.view", "storage.view"], saved

    # assign it to the user, narrowed to one storage ("empty means all" for the rest)
    page.get_by_role("button", name="Assign to a user").click()
    dialog = page.get_by_role("dialog", name=f"Assign {role}")
    dialog.get_by_label("User", exact=True).select_option(holder["id"])
    dialog.get_by_label("Storages").fill("local-lvm")
    dialog.get_by_label("VMs and containers").fill("-1")  # refused in words next to the field
    dialog.get_by_role("button", name="Assign role").click()
    expect(dialog.locator(".field-error")).to_contain_text("VMIDs")
    expect(dialog.get_by_label("Storages")).to_have_value("local-lvm")
    dialog.get_by_label("VMs and containers").fill("")
    dialog.get_by_role("button", name="Assign role").click()
    expect(notice(page)).to_contain_text(f"{holder['username']} now holds {role}")
    holders = page.get_by_role("table", name=f"Holders of {role}")
    expect(holders.locator(f'tr[data-user="{holder["username"]}"]')).to_contain_text("Storages: local-lvm")
    screenshot(page, "role-matrix", tmp_path)
    [assignment] = [a for a in admin.get(f"/api/v1/users/{holder['id']}/roles").json()["items"]
                    if a["tenant_id"] == "default"]
    assert (assignment["role"], assignment["scope"]["storages"], assignment["scope"]["nodes"]) == (
        role, ["local-lvm"], [])

    # the role is in use now: deleting it is refused with the reason
    page.get_by_role("button", name="Delete role").click()
    dialog = page.get_by_role("dialog", name=f"Delete the role {role}?")
    dialog.get_by_role("button", name="Delete role").click()
    expect(dialog.get_by_role("alert")).to_contain_text("assigned to 1 user")
    dialog.get_by_role("button", name="Cancel").click()

    # its holder sees the areas the role allows, and no others
    user_page = another_console.page
    sign_in(user_page, holder["username"], PASSWORD)
    expect_signed_in(user_page)
    expect(nav(user_page).get_by_role("link", name="Roles")).to_be_visible()
    expect(nav(user_page).get_by_role("link", name="Groups")).to_be_visible()
    expect(nav(user_page).get_by_role("link", name="Users")).to_have_count(0)
    user_page.goto("/users")
    expect(user_page.get_by_role("heading", name="Not allowed")).to_be_visible()
    # and its own matrix greys what it does not hold: it cannot grant admin.users
    user_page.goto("/roles/new")
    expect(user_page.get_by_label("admin.users", exact=True)).to_be_disabled()
    expect(user_page.get_by_label("storage.view", exact=True)).to_be_enabled()
    # built-in groups are read-only to anyone but super admins: no add/remove, and the page says why
    nav(user_page).get_by_role("link", name="Groups").click()
    builtin = user_page.get_by_role("table", name="Groups").locator('tr[data-group="ldapusers"]')
    expect(builtin.get_by_role("button", name="Edit ldapusers")).to_have_count(0)
    builtin.get_by_role("link", name="Members of ldapusers").click()
    expect(user_page.get_by_role("status").filter(has_text="only a super admin")).to_be_visible()
    expect(user_page.get_by_role("button", name="Add member")).to_have_count(0)


@pytest.fixture
def directory(platform, slapd):
    """The platform's LDAP sync writes to the test slapd (as test_users_journeys.py's)."""
    admin = platform.admin()
    answer = admin.put("/api/v1/settings/ldap", json={
        "url": slapd.url, "bind_dn": slapd.admin_dn, "password": slapd.admin_password, "base_dn": slapd.base_dn,
        "login_shell": "/bin/zsh", "realm_bind_dn": slapd.reader_dn, "realm_bind_password": slapd.reader_password})
    assert answer.status_code == 200, answer.text
    return slapd


def ldapsearch_group(slapd, cn: str) -> str:
    """The posixGroup `cn` as OpenLDAP's ldapsearch prints it (LDIF), or "" when absent."""
    with tempfile.NamedTemporaryFile("w", prefix="ldappw-") as secret:  # the password stays off the command line
        secret.write(slapd.admin_password)
        secret.flush()
        result = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", slapd.url, "-D", slapd.admin_dn, "-y", secret.name,
             "-b", f"ou=groups,{slapd.base_dn}", f"(&(objectClass=posixGroup)(cn={cn}))", "gidNumber", "memberUid"],
            capture_output=True, text=True, timeout=30, check=False)
    return result.stdout if result.returncode == 0 else ""


def test_a_group_made_with_the_suggested_gid_and_a_member_reaches_the_directory(
        platform, directory, console, unique, tmp_path):
    admin = platform.admin()
    member, _ = platform.create_user(f"gm{unique}")
    page = admin_console(console)
    nav(page).get_by_role("link", name="Groups").click()
    expect(page.get_by_role("heading", name="Groups", level=1)).to_be_visible()
    table = page.get_by_role("table", name="Groups")
    expect(table.locator('tr[data-group="ldapusers"]')).to_contain_text("built-in")
    expect(table.locator('tr[data-group="sysadmins"]')).to_contain_text("Administrator")

    page.get_by_role("button", name="Create group").click()
    dialog = page.get_by_role("dialog", name="Create group")
    gid_field = dialog.get_by_label("GID")
    expect(gid_field).not_to_have_value("")  # the next free GID, suggested
    suggested = admin.get("/api/v1/groups/next-gid").json()["gid_number"]
    expect(gid_field).to_have_value(str(suggested))
    expect(dialog).to_contain_text(f"Suggested: {suggested}")
    cn = f"grp{unique}"
    dialog.get_by_label("CN (group name)").fill(cn)
    dialog.get_by_label("Description").fill("Browser test team")
    # a taken GID: refused next to the field, naming the holder this tenant sees
    gid_field.fill("5000")
    dialog.get_by_role("button", name="Create group").click()
    expect(dialog.locator(".field-error")).to_contain_text("already in use by the group 'ldapusers'")
    expect(dialog.get_by_label("CN (group name)")).to_have_value(cn)
    # the Administrator flag says what it grants
    dialog.get_by_label("Administrator group").check()
    expect(dialog.locator(".admin-warning")).to_contain_text("super admins")
    dialog.get_by_label("Administrator group").uncheck()
    expect(dialog.locator(".admin-warning")).to_have_count(0)
    gid_field.fill(str(suggested))
    dialog.get_by_role("button", name="Create group").click()
    expect(notice(page)).to_contain_text(f"The group {cn} is created with GID {suggested}")
    expect(table.locator(f'tr[data-group="{cn}"]')).to_contain_text(str(suggested))
    screenshot(page, "groups", tmp_path)

    page.get_by_role("link", name=f"Members of {cn}").click()
    expect(page.get_by_role("heading", name=cn, level=1)).to_be_visible()
    expect(page.get_by_text("No members yet.")).to_be_visible()
    page.get_by_label("Add a user of this tenant").select_option(member["id"])
    page.get_by_role("button", name="Add member").click()
    expect(notice(page)).to_contain_text(f"{member['username']} is now a member of {cn}")
    members = page.get_by_role("table", name=f"Members of {cn}")
    expect(members.locator(f'tr[data-member="{member["username"]}"]')).to_have_count(1)
    screenshot(page, "group-members", tmp_path)

    # the directory gets the posixGroup with its GID and member (the sync is asynchronous)
    entry = eventually(lambda: (lambda ldif: ldif if f"memberUid: {member['username']}" in ldif else None)(
        ldapsearch_group(directory, cn)), timeout=60, interval=0.5, message="the posixGroup in slapd")
    assert f"gidNumber: {suggested}" in entry, entry

    # removing the member goes through a confirmation and reaches the directory too
    page.get_by_role("button", name=f"Remove {member['username']} from {cn}").click()
    page.get_by_role("dialog", name=re.compile("Remove")).get_by_role("button", name="Remove member").click()
    expect(notice(page)).to_contain_text("no longer a member")

    # usable at a phone's width: the members table and the group's actions stay within reach
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Groups", exact=True).first.click()
    expect(page.get_by_role("button", name="Create group")).to_be_in_viewport()
    expect(table.locator(f'tr[data-group="{cn}"]').get_by_role("link", name=f"Members of {cn}")).to_be_visible()
    screenshot(page, "groups-phone", tmp_path)
    eventually(lambda: "memberUid" not in ldapsearch_group(directory, cn) and cn in ldapsearch_group(directory, cn),
               timeout=60, interval=0.5, message="the member gone from the posixGroup")
