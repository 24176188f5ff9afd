"""Tenants and Proxmox VE connections in the console, in real headless Chromium against the real
platform: multi-tenancy enabled and tenants created from the Tenants page, a member added with
a role, a user of two tenants who sees each tenant's connections only as they switch, a tenant
admin who sees nothing of the other tenant anywhere (Tenants, Connections, Users, Roles, Groups,
Audit, Sync, Inventory), a connection moved to another tenant by a super admin, and a connection to
the Proxmox VE stand-in pinned with the fingerprint fetched from it, tested, its realm set up."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ops.broker import free_port
from tests.browser.helpers import expect_signed_in, screenshot, sign_in, sign_out
from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD, eventually
from tests.pve_standin import PveStandin

TOKEN_ID, TOKEN_SECRET = "gatehouse@pve!console", "secret-of-the-console-token"


def area(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Areas").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def connection_rows(page: Page):
    return page.get_by_role("table", name="Connections").locator("tbody tr")


def role_in(admin, tenant_id: str, user_id: str) -> str | None:
    answer = admin.get(f"/api/v1/tenants/{tenant_id}/users/{user_id}")
    return answer.json()["role"] if answer.status_code == 200 else None


def test_tenants_keep_their_connections_apart_for_members_and_tenant_admins(platform, console, another_console,
                                                                             unique, tmp_path):
    admin = platform.admin()
    page = console.page
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect_signed_in(page)
    area(page, "Tenants")
    if not admin.get("/api/v1/tenancy").json()["enabled"]:  # another test of the session may have enabled it
        page.get_by_role("button", name="Enable multi-tenancy").click()
        confirm = page.get_by_role("dialog", name="Enable multi-tenancy?")
        expect(confirm).to_contain_text("takes every existing user and every existing connection")
        confirm.get_by_role("button", name="Enable multi-tenancy").click()
        expect(page.locator(".alert-success")).to_contain_text("Multi-tenancy is on")
    else:  # then the page offers tenants, not the switch
        expect(page.get_by_role("table", name="Tenants")).to_be_visible()
        expect(page.get_by_role("button", name="Enable multi-tenancy")).to_have_count(0)
    assert admin.get("/api/v1/tenancy").json()["enabled"] is True

    first, second = f"Acme {unique}", f"Globex {unique}"
    for name in (first, second):
        page.get_by_role("button", name="Create tenant").click()
        dialog = page.get_by_role("dialog", name="Create tenant")
        dialog.get_by_label("Name").fill(name)
        dialog.get_by_label("Description").fill(f"Customer {name}")
        dialog.get_by_role("button", name="Create tenant").click()
        expect(page.locator(f'tr[data-tenant="{name}"]')).to_be_visible()
    screenshot(page, "tenants", tmp_path)
    tenants = {t["name"]: t["id"] for t in admin.get("/api/v1/tenants", params={"limit": 200}).json()["items"]}
    acme, globex = tenants[first], tenants[second]

    # preconditions through the API: a user for both tenants, a tenant admin of Acme only, someone
    # of Globex only, and one connection in each tenant
    both, _ = platform.create_user(f"both{unique}", role="operator", admin=admin)
    boss, _ = platform.create_user(f"boss{unique}", role="admin", admin=admin)
    stranger, _ = platform.create_user(f"glob{unique}", role="viewer", admin=admin)
    for user, tenant_id, role in ((boss, acme, "admin"), (stranger, globex, "viewer"), (both, globex, "operator")):
        assert admin.put(f"/api/v1/tenants/{tenant_id}/users/{user['id']}",
                         json={"role": role, "default": user is not both}).status_code in (200, 201)
        eventually(lambda: role_in(admin, tenant_id, user["id"]) == role, 20, 0.2, f"{role} in the tenant")
    for user in (boss, stranger):  # they belong to their own tenant only
        assert admin.delete(f"/api/v1/tenants/default/users/{user['id']}").status_code == 204
    for tenant_id, name in ((acme, f"acme-pve-{unique}"), (globex, f"globex-pve-{unique}")):
        created = admin.post("/api/v1/connections", json={
            "name": name, "url": f"https://127.0.0.1:{free_port()}", "tenant_id": tenant_id, "verify_tls": False,
            "auth": {"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET}})
        assert created.status_code == 201, created.text

    # the admin adds the user of both tenants to Acme from the tenant's page, with a role there
    page.get_by_role("link", name=first).click()
    expect(page.get_by_role("heading", name=first, level=1)).to_be_visible()
    members = page.get_by_role("form", name="Add a member")
    members.get_by_label("Username or email").fill(f"nobody{unique}")
    members.get_by_role("button", name="Add member").click()
    expect(members.locator(".field-error")).to_contain_text(f"No user nobody{unique}")
    members.get_by_label("Username or email").fill(f"both{unique}")
    members.get_by_label("Role in this tenant").select_option("operator")
    members.get_by_role("button", name="Add member").click()
    expect(page.locator(".alert-success")).to_contain_text(f"both{unique} is a member of {first} as operator")
    expect(page.get_by_label(f"Role of both{unique}")).to_have_value("operator")
    # a role changes with the row's Save button only, not as the select changes (keyboard users)
    page.get_by_label(f"Role of both{unique}").select_option("viewer")
    expect(page.get_by_role("button", name=f"Save role of both{unique}")).to_be_visible()
    assert role_in(admin, acme, both["id"]) == "operator"  # nothing sent yet
    page.get_by_role("button", name=f"Keep the role of both{unique}").click()
    expect(page.get_by_label(f"Role of both{unique}")).to_have_value("operator")
    expect(page.get_by_role("button", name=f"Save role of both{unique}")).to_have_count(0)
    page.get_by_label(f"Role of both{unique}").select_option("viewer")
    page.get_by_role("button", name=f"Save role of both{unique}").click()
    expect(page.locator(".alert-success")).to_contain_text(f"both{unique} is viewer in {first}")
    eventually(lambda: role_in(admin, acme, both["id"]) == "viewer", 20, 0.2, "viewer in Acme")
    page.get_by_label(f"Role of both{unique}").select_option("operator")
    page.get_by_role("button", name=f"Save role of both{unique}").click()
    expect(page.locator(".alert-success")).to_contain_text(f"both{unique} is operator in {first}")
    expect(page.get_by_role("table", name=f"Connections of {first}")).to_contain_text(f"acme-pve-{unique}")
    screenshot(page, "tenant-members", tmp_path)
    eventually(lambda: role_in(admin, acme, both["id"]) == "operator", 20, 0.2, "operator in Acme")

    # the user of both tenants switches with the frame's selector and sees each tenant's connections only
    user_page = another_console.page
    sign_in(user_page, f"both{unique}", PASSWORD)
    expect_signed_in(user_page)
    area(user_page, "Connections")
    selector = user_page.get_by_label("Tenant")
    for shown, hidden, tenant_name in ((f"acme-pve-{unique}", f"globex-pve-{unique}", first),
                                       (f"globex-pve-{unique}", f"acme-pve-{unique}", second)):
        selector.select_option(label=tenant_name)
        expect(user_page.locator(f'tr[data-connection="{shown}"]')).to_be_visible()
        expect(connection_rows(user_page)).to_have_count(1)
        expect(user_page.get_by_text(hidden)).to_have_count(0)
        expect(user_page.locator(".lead")).to_contain_text(tenant_name)
    # on the page of a tenant other than the active one they are offered a switch, not an error
    user_page.goto(f"/tenants/{acme}")
    expect(user_page.get_by_text("Switch to this tenant to see its connections")).to_be_visible()
    expect(user_page.locator(".alert-error")).to_have_count(0)
    user_page.get_by_role("button", name=f"Switch to {first}").click()
    expect(user_page.get_by_role("table", name=f"Connections of {first}")).to_contain_text(f"acme-pve-{unique}")
    expect(user_page.get_by_label("Tenant")).to_have_value(acme)
    sign_out(user_page)

    # Acme's admin: nothing of Globex on the tenants, connections and users pages
    sign_in(user_page, f"boss{unique}", PASSWORD)
    expect_signed_in(user_page)
    area(user_page, "Tenants")
    expect(user_page.locator(f'tr[data-tenant="{first}"]')).to_be_visible()
    expect(user_page.get_by_role("table", name="Tenants").locator("tbody tr")).to_have_count(1)
    user_page.goto(f"/tenants/{globex}")
    expect(user_page.locator(".alert-error")).to_contain_text("No such tenant")
    area(user_page, "Connections")
    expect(user_page.locator(f'tr[data-connection="acme-pve-{unique}"]')).to_be_visible()
    expect(connection_rows(user_page)).to_have_count(1)
    area(user_page, "Users")
    expect(user_page.get_by_role("table", name="Users")).to_have_attribute("aria-busy", "false")
    expect(user_page.locator(f'tr[data-user="both{unique}"]')).to_be_visible()
    expect(user_page.locator(f'tr[data-user="glob{unique}"]')).to_have_count(0)
    globex_pve = next(c for c in admin.get("/api/v1/connections", params={"limit": 200, "tenant": "*"}).json()["items"]
                      if c["name"] == f"globex-pve-{unique}")
    for path in ("/tenants", "/connections", "/users", "/roles", "/groups", "/audit", "/sync", "/inventory"):
        user_page.goto(path)
        expect(user_page.get_by_role("heading", level=1)).to_be_visible()
        expect(user_page.locator("main .loading")).to_have_count(0)  # what the page read is shown
        if path != "/sync":  # there, Acme's unreachable stand-in address is an error to show
            expect(user_page.locator("main .alert-error"), f"an error on {path}").to_have_count(0)
        main = user_page.locator("main")
        for foreign in (second, globex, f"globex-pve-{unique}", globex_pve["id"], f"glob{unique}"):
            expect(main).not_to_contain_text(foreign)
        if path in ("/connections", "/sync"):  # their own tenant's connection is there
            expect(main).to_contain_text(f"acme-pve-{unique}")

    # a super admin moves a connection to another tenant from the tenant's page
    page.goto(f"/tenants/{acme}")
    page.get_by_label(f"Move acme-pve-{unique} to").select_option(label=second)
    move = page.get_by_role("dialog", name=f"Move acme-pve-{unique} to {second}?")
    move.get_by_role("button", name="Move connection").click()
    expect(page.locator(".alert-success")).to_contain_text(f"acme-pve-{unique} now belongs to {second}")
    expect(page.locator(f'tr[data-connection="acme-pve-{unique}"]')).to_have_count(0)
    moved = [c for c in admin.get("/api/v1/connections", params={"limit": 200, "tenant": "*"}).json()["items"]
             if c["name"] == f"acme-pve-{unique}"]
    assert moved and moved[0]["tenant_id"] == globex


@pytest.fixture(scope="module")
def pve():
    with PveStandin() as server:
        server.add_token(TOKEN_ID, TOKEN_SECRET)
        yield server


def test_a_connection_is_pinned_with_the_fetched_fingerprint_tested_and_given_its_realm(platform, console, pve, slapd,
                                                                                        unique, tmp_path):
    admin = platform.admin()
    directory = admin.put("/api/v1/settings/ldap", json={  # as tests/browser/test_audit_sync.py's
        "url": slapd.url, "bind_dn": slapd.admin_dn, "password": slapd.admin_password, "base_dn": slapd.base_dn,
        "login_shell": "/bin/zsh", "realm_bind_dn": slapd.reader_dn, "realm_bind_password": slapd.reader_password})
    assert directory.status_code == 200, directory.text
    page = console.page
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect_signed_in(page)
    area(page, "Connections")
    page.get_by_role("button", name="Add connection").click()
    dialog = page.get_by_role("dialog", name="Add connection")
    name = f"lab-{unique}"
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Address").fill(pve.url.replace("https://", "http://"))
    dialog.get_by_label("Token ID").fill(TOKEN_ID)
    dialog.get_by_label("Token secret").fill(TOKEN_SECRET)
    expect(dialog.get_by_label("Pin the certificate's fingerprint")).to_be_checked()
    dialog.get_by_role("button", name="Fetch from server").click()
    expect(dialog.locator(".field-error")).to_contain_text("must start with https://")  # next to the address
    dialog.get_by_label("Address").fill(pve.url)
    dialog.get_by_role("button", name="Fetch from server").click()
    fetched = dialog.locator(".fetched")
    expect(fetched.locator("[data-fingerprint]")).to_have_text(pve.fingerprint.upper())
    dialog.get_by_label("Address").fill(pve.url + "/")  # another address: the certificate is not its
    expect(fetched).to_have_count(0)
    dialog.get_by_label("Address").fill(pve.url)
    dialog.get_by_role("button", name="Fetch from server").click()
    expect(fetched.locator("[data-fingerprint]")).to_have_text(pve.fingerprint.upper())
    expect(dialog.get_by_label("SHA-256 fingerprint")).to_have_value("")  # not used before the admin confirms
    fetched.scroll_into_view_if_needed()
    screenshot(page, "connection-add", tmp_path)
    fetched.get_by_role("button", name="Use this fingerprint").click()
    expect(dialog.get_by_label("SHA-256 fingerprint")).to_have_value(pve.fingerprint.upper())
    expect(dialog.get_by_label("Token secret")).to_have_value(TOKEN_SECRET)  # nothing typed was lost
    dialog.get_by_role("button", name="Add connection").click()
    expect(page.locator(".alert-success")).to_contain_text(f"{name} is added")
    row = page.locator(f'tr[data-connection="{name}"]')
    expect(row).to_contain_text("Pinned fingerprint")

    row.get_by_label(f"Actions for {name}").click()
    row.get_by_role("button", name="Test connection").click()
    expect(page.locator(".alert-success")).to_contain_text(
        f"{name} works: Proxmox VE 8.3 (pve-manager 8.3.2) accepted the credentials.")
    screenshot(page, "connections", tmp_path)

    # the LDAP realm on the Proxmox VE points at the directory
    row.get_by_label(f"Actions for {name}").click()
    row.get_by_role("button", name="Set up realm").click()
    realm = page.get_by_role("dialog", name=f"Set up the realm of {name}")
    realm.get_by_role("button", name="Set up realm").click()
    expect(realm.locator(".alert-success")).to_contain_text("The realm gatehouse is created")
    expect(realm.locator(".alert-success")).to_contain_text(f"users under ou=people,{slapd.base_dn}")
    realm.get_by_role("button", name="Done").click()
    expect(realm).to_have_count(0)

    stored = [c for c in platform.admin().get("/api/v1/connections", params={"limit": 200}).json()["items"]
              if c["name"] == name]
    assert stored and stored[0]["fingerprint"] == pve.fingerprint.upper() and stored[0]["verify_tls"] is True
