"""The Inventory and Settings pages in real headless Chromium against the real platform: a scoped
user's inventory (a Proxmox VE stand-in behind a real connection) with only the buttons their
role allows and the outcome of a start and a stop; a super admin's password policy and
registration settings (seen by another person's console) and the SMTP test mail (read from the
test SMTP server)."""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import expect_signed_in, screenshot, sign_in
from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME
from tests.integration.test_connections import create as create_connection
from tests.integration.test_inventory import scoped, shows, standin
from tests.integration.test_isolation import NEW_PASSWORD
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


def test_a_scoped_user_sees_only_their_inventory_and_buttons_and_the_outcome_of_actions(platform, console, cluster,
                                                                                       tmp_path):
    root, conn, pve = cluster["root"], cluster["conn"], cluster["pve"]
    role = root.post("/api/v1/roles", json={
        "name": f"starter-{cluster['tag']}", "global": True,
        "permissions": ["vm.view", "vm.start", "vm.stop", "node.view", "storage.view"]})  # no vm.restart
    assert role.status_code == 201, role.text
    name = f"invb{cluster['tag']}"
    api = scoped(platform, root, cluster, "invb", role.json()["name"], {"storages": ["local"], "vms": ["100", "101"]})
    shows(api, "vms", [f"{conn}.100", f"{conn}.101"])

    page = console.page
    sign_in(page, name, NEW_PASSWORD)
    expect_signed_in(page)
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
