"""The Inventory and Settings pages in real headless Chromium against the real platform: a custom
role made in the Roles page's matrix and assigned there with a storage and VM scope, whose holder
sees only the areas it allows and a scoped inventory (a Proxmox VE stand-in behind a real
connection) with only the buttons the role allows and the outcome of a start and a stop; a super
admin's password policy and registration settings (seen by another person's console), the SMTP
test mail (read from the test SMTP server), the LDAP directory form refusing a value next to its
field, and the 2FA policy section."""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import expect_signed_in, screenshot, sign_in
from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.integration.test_connections import create as create_connection
from tests.integration.test_inventory import shows, standin
from tests.integration.test_isolation import NEW_PASSWORD, user_in
from tests.integration.test_tenancy import new_tenant
from tests.pve_standin.cluster import add_guest, add_node, add_storage, guest


def admin_console(console) -> Page:
    page = console.page
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect_signed_in(page)
    return page


def open_area(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Areas").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


# --- inventory ----------------------------------------------------------------------------------

@pytest.fixture
def cluster(platform):
    """A tenant with a connection to a Proxmox VE stand-in: n1 (web 100 stopped, app 101 running,
    storage local), n2 (ct 200, storage local-lvm)."""
    root = platform.admin()
    tag = uuid.uuid4().hex[:6]
    tenant = new_tenant(root, f"Browser inv {tag}")
    pve = standin()
    add_node(pve, "n1")
    add_node(pve, "n2")
    add_guest(pve, "n1", 100, name="web")
    add_guest(pve, "n1", 101, name="app", status="running")
    add_guest(pve, "n2", 200, kind="lxc", name="ct")
    add_storage(pve, "n1", "local")
    add_storage(pve, "n2", "local-lvm", plugintype="lvmthin")
    connection = create_connection(root, name=f"binv-{tag}", url=pve.url, ca_pem=pve.ca_pem, tenant_id=tenant["id"])
    yield {"root": root, "tag": tag, "a": tenant, "pve": pve, "conn": connection["id"]}
    pve.stop()


def test_a_role_made_in_the_matrix_and_assigned_with_a_scope_limits_the_holders_areas_and_inventory(
        platform, console, another_console, cluster, tmp_path):
    root, conn, pve = cluster["root"], cluster["conn"], cluster["pve"]
    # precondition through the API: the future holder, a viewer of the tenant (their role is replaced below)
    name = f"invb{cluster['tag']}"
    holder, api = user_in(platform, root, cluster["a"]["id"], name, "viewer")

    # the super admin, in the tenant, makes the role in the matrix and assigns it with a scope
    admin = admin_console(another_console)
    admin.get_by_label("Tenant", exact=True).select_option(label=cluster["a"]["name"])
    expect(admin.locator(".tenant-selector select")).to_have_value(cluster["a"]["id"])
    admin.get_by_role("navigation", name="Areas").get_by_role("link", name="Roles").click()
    admin.get_by_role("link", name="New role").click()
    role = f"starter-{cluster['tag']}"
    admin.get_by_label("Name").fill(role)
    for permission in ("vm.view", "vm.start", "vm.stop", "node.view", "storage.view"):  # no vm.restart
        admin.get_by_label(permission, exact=True).check()
    admin.get_by_role("button", name="Create role").click()
    expect(admin.get_by_role("heading", name=re.compile(role), level=1)).to_be_visible()
    admin.get_by_role("button", name="Assign to a user").click()
    dialog = admin.get_by_role("dialog", name=f"Assign {role}")
    dialog.get_by_label("User", exact=True).select_option(holder["id"])
    dialog.get_by_label("Storages").fill("local")
    dialog.get_by_label("VMs and containers").fill("100, 101")
    dialog.get_by_role("button", name="Assign role").click()
    expect(admin.locator(".alert-success")).to_contain_text(f"{name} now holds {role}")
    [assignment] = [a for a in root.get(f"/api/v1/users/{holder['id']}/roles").json()["items"]
                    if a["tenant_id"] == cluster["a"]["id"]]
    assert (assignment["role"], assignment["scope"]["storages"], assignment["scope"]["vms"]) == (
        role, ["local"], ["100", "101"])
    shows(api, "vms", [f"{conn}.100", f"{conn}.101"])  # the scope has reached the inventory

    # the holder sees only the areas of the role, and the inventory of its scope
    page = console.page
    sign_in(page, name, NEW_PASSWORD)
    expect_signed_in(page)
    areas = page.get_by_role("navigation", name="Areas")
    expect(areas.get_by_role("link", name="Inventory")).to_be_visible()
    for hidden in ("Users", "Roles", "Groups", "Audit", "Settings"):
        expect(areas.get_by_role("link", name=hidden, exact=True)).to_have_count(0)
    open_area(page, "Inventory")
    guests = page.get_by_role("region", name=re.compile("Virtual machines and containers"))
    expect(guests.locator("tbody tr")).to_have_count(2)  # 200 is outside the scope
    expect(guests.locator(f'tr[data-vm="{conn}.200"]')).to_have_count(0)
    storages = page.get_by_role("region", name=re.compile("Storages"))
    expect(storages.locator("tbody tr")).to_have_count(1)
    expect(storages.locator("tbody")).to_contain_text("local")
    expect(storages.locator("tbody")).not_to_contain_text("local-lvm")
    expect(page.get_by_role("region", name=re.compile("Nodes")).locator("tbody tr")).to_have_count(2)
    web, app = guests.locator(f'tr[data-vm="{conn}.100"]'), guests.locator(f'tr[data-vm="{conn}.101"]')
    expect(web.get_by_role("button")).to_have_text(["Start"])  # stopped: only Start
    expect(app.get_by_role("button")).to_have_text(["Shut down", "Stop"])  # running: no Reboot without vm.restart
    expect(page.get_by_role("button", name=re.compile("^Reboot"))).to_have_count(0)
    screenshot(page, "inventory", tmp_path)

    web.get_by_role("button", name="Start web (100)").click()
    expect(page.locator(".inv-outcome")).to_contain_text("Start of web (100) done: it is running.")
    assert guest(pve, 100)["status"] == "running"
    expect(web.get_by_role("button")).to_have_text(["Shut down", "Stop"])

    web.get_by_role("button", name="Stop web (100)").click()
    dialog = page.get_by_role("dialog", name="Stop web (100)?")
    expect(dialog).to_contain_text("cuts the power")
    dialog.get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator(".inv-outcome")).to_contain_text("Stop of web (100) done: it is stopped.")
    assert guest(pve, 100)["status"] == "stopped"

    # Proxmox VE refusing (the stand-in's guest stopped behind the page's back) is said in words
    pve_guest = guest(pve, 101)
    pve_guest["status"] = "stopped"
    app.get_by_role("button", name="Stop app (101)").click()
    page.get_by_role("dialog", name="Stop app (101)?").get_by_role("button", name="Stop", exact=True).click()
    expect(page.locator(".inv-outcome")).to_contain_text("Stop of app (101) failed: Proxmox VE refused")


# --- settings -------------------------------------------------------------------------------------

@pytest.fixture
def settings_restored(platform, smtp):
    root = platform.admin()
    yield root
    for path, body in (("/api/v1/settings/password-policy", {}),
                       ("/api/v1/settings/registration", {"self_registration": True, "allowed_email_domains": []}),
                       ("/api/v1/settings/smtp", smtp.smtp_settings(password=""))):
        assert root.put(path, json=body).status_code == 200


def section(page: Page, name: str):
    return page.get_by_role("region", name=name)


def test_a_super_admin_changes_policy_and_registration_and_sends_a_test_mail(platform, smtp, console, another_console,
                                                                            settings_restored, unique, tmp_path):
    root = settings_restored
    secret = f"Smtp-{unique}-secret"
    assert root.put("/api/v1/settings/smtp", json=smtp.smtp_settings(username="mailer", password=secret)).status_code == 200
    page = admin_console(console)
    open_area(page, "Settings")

    # password policy: a refusal lands next to its field and keeps what was typed; then a change
    policy = section(page, "Password policy")
    policy.get_by_label("Minimum length").fill("20")
    policy.get_by_label("Maximum length").fill("16")
    policy.get_by_role("button", name="Save password policy").click()
    expect(policy.locator(".field-error")).to_contain_text("must be at least min_length")
    expect(policy.get_by_label("Minimum length")).to_have_value("20")
    policy.get_by_label("Maximum length").fill("64")
    policy.get_by_role("button", name="Save password policy").click()
    expect(policy.get_by_role("status")).to_contain_text("20 to 64 characters")
    assert root.get("/api/v1/settings/password-policy").json()["min_length"] == 20

    # the LDAP directory: a refused URL is named next to its field, what was typed stays, nothing is stored
    stored = root.get("/api/v1/settings/ldap").json()
    directory = section(page, "LDAP directory")
    url = directory.get_by_label("Directory URL")
    url.fill("https://not-a-directory.example")
    directory.get_by_label("Base DN").fill("dc=example,dc=com")  # the rest valid, in case none is stored yet
    directory.get_by_label("Bind DN", exact=True).fill("cn=admin,dc=example,dc=com")
    directory.get_by_label(re.compile("^Bind password")).fill("not-stored")
    directory.get_by_role("button", name="Save directory settings").click()
    expect(directory.locator(".field.has-error").filter(has=page.get_by_label("Directory URL"))).to_contain_text(
        "must be ldap://host[:port] or ldaps://host[:port]")
    expect(url).to_have_value("https://not-a-directory.example")
    assert root.get("/api/v1/settings/ldap").json() == stored

    # the 2FA policy for super admins: shown as stored (not changed here)
    required = root.get("/api/v1/settings/2fa-policy").json()["require_for_super_admin"]
    two_factor = section(page, "Two-factor policy")
    expect(two_factor.get_by_label("Require two-factor authentication for super admins")).to_be_checked(checked=required)
    expect(two_factor.get_by_role("button", name="Save two-factor policy")).to_be_enabled()

    # registration: closed, seen by someone else's console; a bad domain named; open again
    visitor = another_console.page
    visitor.goto("/sign-in")
    expect(visitor.get_by_role("link", name="Create an account")).to_be_visible()
    registration = section(page, "Registration")
    registration.get_by_label("Allow self-registration").uncheck()
    registration.get_by_role("button", name="Save registration settings").click()
    expect(registration.get_by_role("status")).to_contain_text("self-registration is closed")
    visitor.goto("/register")
    expect(visitor.get_by_role("heading", name="Registration is closed")).to_be_visible()
    visitor.goto("/sign-in")
    expect(visitor.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(visitor.get_by_role("link", name="Forgot your password?")).to_be_visible()
    expect(visitor.get_by_role("link", name="Create an account")).to_have_count(0)

    registration.get_by_label("Allow self-registration").check()
    registration.get_by_label("Allowed email domains").fill("example.com\nnot a domain")
    registration.get_by_role("button", name="Save registration settings").click()
    expect(registration.locator(".field-error")).to_contain_text("'not a domain' is not a valid email domain")
    registration.get_by_label("Allowed email domains").fill("Example.com")
    registration.get_by_role("button", name="Save registration settings").click()
    expect(registration.get_by_role("status")).to_contain_text("anyone may register with an address of example.com")
    visitor.goto("/register")
    expect(visitor.get_by_role("heading", name="Create an account")).to_be_visible()
    expect(visitor.get_by_text("Registration is open to addresses of example.com.")).to_be_visible()

    # SMTP: the stored password is "set", never shown; a test mail that fails says why, one that works arrives
    smtp_section = section(page, "Mail (SMTP)")
    expect(smtp_section.get_by_label(re.compile("^Password"))).to_have_value("")
    expect(smtp_section.locator(".secret-state")).to_have_text("set")
    assert secret not in page.content()
    to = f"test-{unique}@example.com"
    smtp_section.get_by_label("Test mail to").fill(to)
    smtp_section.get_by_role("button", name="Send a test mail").click()
    expect(smtp_section.get_by_role("alert")).to_contain_text(f"The test mail to {to} was not sent")  # no AUTH there
    smtp_section.get_by_label("Remove the stored password").check()
    smtp_section.get_by_label("Username").fill("")
    smtp_section.get_by_role("button", name="Save SMTP settings").click()
    expect(smtp_section.get_by_role("status")).to_contain_text("The SMTP settings are saved")
    expect(smtp_section.locator(".secret-state")).to_have_text("not set")
    smtp_section.get_by_role("button", name="Send a test mail").click()
    expect(smtp_section.get_by_role("status").filter(has_text="took the test mail")).to_contain_text(to)
    assert smtp.wait_for(to)[0]["Subject"] == "Gatehouse test mail"
    screenshot(page, "settings", tmp_path)
