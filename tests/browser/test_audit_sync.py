"""The Audit log and Sync pages in real headless Chromium against the real platform: the audit
page filters to the records of actions just done (through the API), shows a change's
before/after, exports the filtered view as a download and, for a super admin, verifies the
hash chain and finds another tenant's record with the tenant filter (which a tenant admin never
sees); the sync page runs a full sync of a Proxmox VE connection (a stand-in that holds the
changes until the test has seen the run) and follows it live, running with its progress, to its
end, without a reload."""
from __future__ import annotations

import csv
import io
import json
import re
import threading
import uuid
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import expect_signed_in, screenshot, sign_in
from tests.harness import ADMIN_PASSWORD, ADMIN_USERNAME, PASSWORD, eventually
from tests.integration.test_connections import create as create_connection
from tests.integration.test_inventory import standin
from tests.integration.test_isolation import switched
from tests.integration.test_tenancy import new_tenant
from tests.pve_standin.access import world


@pytest.fixture(scope="module")
def admin(platform):
    return platform.admin()


@pytest.fixture(scope="module")
def directory(platform, admin, slapd):
    """The platform's LDAP sync writes to the test slapd (as tests/integration/test_sync.py's)."""
    answer = admin.put("/api/v1/settings/ldap", json={
        "url": slapd.url, "bind_dn": slapd.admin_dn, "password": slapd.admin_password, "base_dn": slapd.base_dn,
        "login_shell": "/bin/zsh", "realm_bind_dn": slapd.reader_dn, "realm_bind_password": slapd.reader_password})
    assert answer.status_code == 200, answer.text
    return slapd


@pytest.fixture(scope="module")
def elsewhere(platform, admin):
    """An audit record of another tenant: a user a super admin creates in a tenant of its own
    (new_tenant turns multi-tenancy on if an earlier test has not)."""
    tag = uuid.uuid4().hex[:6]
    tenant = new_tenant(admin, f"Audit elsewhere {tag}")
    name = f"aelse{tag}"
    inside = switched(platform.admin(), tenant["id"])  # a session of its own, active in that tenant
    made = inside.post("/api/v1/users", json={"username": name, "email": f"{name}@example.com",
                                              "first_name": "Else", "last_name": "Where"})
    assert made.status_code == 201, made.text
    [record] = eventually(lambda: admin.audit(action="user_created", q=name), 20, 0.2, "the record elsewhere")
    assert record["tenant_ids"] == [tenant["id"]], record
    return {"tenant": tenant, "name": name}


def admin_console(console) -> Page:
    page = console.page
    sign_in(page, ADMIN_USERNAME, ADMIN_PASSWORD)
    expect_signed_in(page)
    return page


def open_area(page: Page, nav: str, heading: str) -> None:
    page.get_by_role("navigation", name="Areas").get_by_role("link", name=nav, exact=True).click()
    expect(page.get_by_role("heading", name=heading, level=1)).to_be_visible()


def records(page: Page):
    return page.get_by_role("table", name="Audit records").locator("tbody tr")


def apply_filters(page: Page, **fields: str) -> None:
    form = page.get_by_role("form", name="Audit filters")
    for label, value in fields.items():
        form.get_by_label(label, exact=True).fill(value)
    form.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_role("table", name="Audit records")).to_have_attribute("aria-busy", "false")


def test_the_audit_page_filters_to_actions_just_done_pages_exports_shows_a_change_and_verifies(
        platform, admin, elsewhere, console, unique, tmp_path):
    # Actions done through the API: eleven users created (more than a page of ten), one renamed.
    names = [f"aud{unique}{number:02d}" for number in range(11)]
    ids = []
    for name in names:
        made = admin.post("/api/v1/users", json={"username": name, "email": f"{name}@example.com",
                                                  "first_name": "Audit", "last_name": "Probe"})
        assert made.status_code == 201, made.text
        ids.append(made.json()["user"]["id"])
    changed = admin.patch(f"/api/v1/users/{ids[0]}", json={"first_name": "Renamed"})
    assert changed.status_code == 200, changed.text
    eventually(lambda: len(admin.audit(action="user_created", q=unique)) == len(names)
               and admin.audit(action="user_updated", resource_id=ids[0]), 20, 0.2, "the actions audited")
    newest_first = names[::-1]

    page = admin_console(console)
    open_area(page, "Audit", "Audit log")
    expect(records(page).first).to_be_visible()

    # Filter by action, actor, free text and time: exactly the creations, newest first, ten a page.
    local = "%Y-%m-%dT%H:%M:%S"  # a datetime-local value, in the browser's (this machine's) time zone
    page.get_by_label("Per page").select_option("10")
    apply_filters(page, **{"Action": "user_created", "Actor": ADMIN_USERNAME, "Search": unique,
                           "From": (datetime.now() - timedelta(hours=1)).strftime(local)})
    shown = records(page)
    expect(shown).to_have_count(10)
    for index, name in enumerate(newest_first[:10]):
        expect(shown.nth(index)).to_contain_text(name)
        expect(shown.nth(index)).to_have_attribute("data-action", "user_created")
        expect(shown.nth(index)).to_contain_text(ADMIN_USERNAME)
    screenshot(page, "audit", tmp_path)
    page.get_by_role("button", name="Next").click()
    expect(shown).to_have_count(1)
    expect(shown.first).to_contain_text(names[0])
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(shown).to_have_count(10)
    expect(shown.first).to_contain_text(newest_first[0])

    # The filtered view exported, every page of it: the CSV holds exactly these records.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export CSV").click()
    download = download_info.value
    assert re.fullmatch(r"audit-\d{8}T\d{6}Z\.csv", download.suggested_filename), download.suggested_filename
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert [(row["action"], row["resource_name"]) for row in rows] == [("user_created", name) for name in newest_first]
    assert {row["actor_username"] for row in rows} == {ADMIN_USERNAME}
    expect(page.get_by_role("status").filter(has_text="11 records.")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export JSON lines").click()
    lines = open(download_info.value.path(), encoding="utf-8").read().splitlines()
    assert [json.loads(line)["resource"]["id"] for line in lines] == ids[::-1]

    # A time range ending before it starts is refused next to "Until"; one before the actions finds
    # nothing, and the page says what to do.
    apply_filters(page, **{"Until": (datetime.now() - timedelta(days=1)).strftime(local)})
    expect(page.get_by_role("form", name="Audit filters").locator(".field.has-error")).to_contain_text("Must be after")
    apply_filters(page, **{"From": ""})
    expect(shown).to_have_count(0)
    expect(page.get_by_text("No record matches these filters.")).to_be_visible()

    # A change's detail: its before and after.
    apply_filters(page, **{"Action": "user_updated", "Actor": "", "Search": "", "From": "", "Until": "",
                           "Resource id": ids[0]})
    expect(shown).to_have_count(1)
    shown.first.get_by_role("button", name=re.compile("^Details of record")).click()
    dialog = page.get_by_role("dialog", name=re.compile(r"^Audit record #\d+"))
    change = dialog.get_by_role("table", name="What changed").get_by_role("row", name=re.compile("first_name"))
    expect(change.get_by_role("cell").nth(0)).to_have_text("Audit")  # before
    expect(change.get_by_role("cell").nth(1)).to_have_text("Renamed")  # after
    expect(dialog).to_contain_text(ADMIN_USERNAME)
    screenshot(page, "audit-detail", tmp_path)
    # From the record to everything about its user (created, assigned to the tenant, renamed).
    dialog.get_by_role("button", name="Everything about this user").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_label("Resource id", exact=True)).to_have_value(ids[0])
    expect(page.get_by_label("Action", exact=True)).to_have_value("")
    for action in ("user_created", "user_updated"):
        expect(shown.and_(page.locator(f'[data-action="{action}"]'))).to_have_count(1)
    expect(shown.filter(has_not_text=names[0])).to_have_count(0)

    # A filter the API refuses is named next to its field; what was typed stays.
    form = page.get_by_role("form", name="Audit filters")
    form.get_by_label("Action", exact=True).fill("x" * 129)
    form.get_by_role("button", name="Apply filters").click()
    expect(form.locator(".field.has-error")).to_contain_text("Action")
    expect(form.get_by_label("Action", exact=True)).to_have_value("x" * 129)

    # A super admin verifies the hash chain; the answer is in words.
    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator(".verify-answer")).to_contain_text(re.compile(r"The audit trail is intact: \d+ records? checked"))

    # Across tenants: the record of another tenant is the super admin's to see, and the tenant filter
    # finds it in its tenant only.
    form = page.get_by_role("form", name="Audit filters")
    form.get_by_label("Tenant", exact=True).select_option(elsewhere["tenant"]["id"])
    apply_filters(page, **{"Action": "user_created", "Resource id": "", "Search": elsewhere["name"]})
    expect(shown).to_have_count(1)
    expect(shown.first).to_contain_text(elsewhere["tenant"]["name"])  # the Tenants column
    form.get_by_label("Tenant", exact=True).select_option("default")
    apply_filters(page)
    expect(shown).to_have_count(0)


def test_a_tenant_admin_reads_the_audit_log_without_the_chain_check_on_a_phone(platform, admin, elsewhere, console,
                                                                             unique):
    name = f"taud{unique}"
    platform.create_user(name, role="admin", admin=admin)
    page = console.page
    sign_in(page, name, PASSWORD)
    expect_signed_in(page)
    page.set_viewport_size({"width": 390, "height": 844})
    open_area(page, "Audit", "Audit log")
    expect(records(page).first).to_be_visible()
    expect(page.get_by_role("button", name="Export CSV")).to_be_visible()
    expect(page.get_by_role("button", name="Verify chain")).to_have_count(0)
    expect(page.get_by_label("Tenant", exact=True)).to_have_count(0)
    apply_filters(page, Search=elsewhere["name"])  # another tenant's record is not theirs to see
    expect(page.get_by_text("No record matches these filters.")).to_be_visible()
    apply_filters(page, Search="")
    details = records(page).first.get_by_role("button", name=re.compile("^Details of record"))
    details.click()
    dialog = page.get_by_role("dialog", name=re.compile(r"^Audit record #\d+"))
    expect(dialog.get_by_role("button", name="Close")).to_be_visible()


@pytest.fixture
def held_pve(platform, admin):
    """A Proxmox VE connection of the default tenant, fully synced once, whose managed users then
    drift (their first names changed behind Gatehouse's back), so a full sync has changes to write;
    its stand-in answers each user change only once `release` is set (or after 4 s, within the
    sync's 5 s a request, so the run never fails for it): the run stays running until the test
    has seen it."""
    server = standin()
    world(server).realms["gatehouse"] = {"type": "ldap", "server1": "127.0.0.1", "base_dn": "ou=people,dc=test",
                                         "user_attr": "uid"}
    connection = create_connection(admin, name=f"held-{uuid.uuid4().hex[:6]}", url=server.url,
                                   fingerprint=server.fingerprint)
    target = f"pve:{connection['id']}"

    def status():
        return next((item for item in admin.get("/api/v1/sync/status").json()["items"]
                     if item.get("connection_id") == connection["id"]), None)
    settled = eventually(lambda: (lambda item: item if item and item["last_full_at"] and not item["running"]
                                  and item["pending"] == 0 else None)(status()), 60, 0.3, "the first full sync")
    access = world(server)
    with access.lock:
        drifted = [userid for userid, user in access.users.items() if userid.endswith("@gatehouse")]
        for userid in drifted:
            access.users[userid]["firstname"] = "Drifted"
    assert drifted, "the first full sync made no user"
    release = threading.Event()
    update = server.handlers[("PUT", "/access/users/{userid}")]
    server.handlers[("PUT", "/access/users/{userid}")] = lambda pve, call: (release.wait(4), update(pve, call))[1]
    yield {"connection": connection, "target": settled["target"] or target, "name": connection["name"],
           "last_full": settled["last_full_at"], "release": release}
    release.set()
    admin.delete(f"/api/v1/connections/{connection['id']}")
    server.stop()


def test_a_sync_runs_from_the_page_with_visible_progress(platform, admin, directory, held_pve, console,
                                                         another_console, unique, tmp_path):
    page = admin_console(console)
    open_area(page, "Sync", "Sync")
    expect(page.locator('article[data-target="ldap"]').get_by_role("heading", name="LDAP directory")).to_be_visible()
    card = page.locator(f'article[data-target="{held_pve["target"]}"]')
    name = f"Proxmox VE: {held_pve['name']}"
    expect(card.get_by_role("heading", name=name)).to_be_visible()
    expect(card).to_have_attribute("data-last-full", held_pve["last_full"])

    # "Run now": the card follows the run live (no reload): running with its progress in words while
    # the Proxmox VE holds the changes, then finished, with a newer last full sync and the log's line.
    page.evaluate("window.sameDocument = true")  # gone if anything reloaded the page
    card.get_by_role("button", name=f"Run now: {name}").click()
    log = page.get_by_role("log", name="Sync activity")
    expect(log).to_contain_text(f"Full sync requested: {name}.")
    expect(card).to_have_attribute("data-state", "running")
    expect(card.get_by_role("status")).to_contain_text(re.compile(r"Full sync running: \d+ of \d+ changes? written"))
    expect(card.get_by_role("progressbar", name=f"Progress of {name}")).to_be_visible()
    screenshot(page, "sync", tmp_path)
    held_pve["release"].set()
    expect(log).to_contain_text(re.compile(rf"{re.escape(name)}: full sync finished at .+, \d+ changes? in "),
                                timeout=60_000)
    expect(card).to_have_attribute("data-state", "idle")
    full_after = card.get_attribute("data-last-full")
    assert full_after and datetime.fromisoformat(full_after) > datetime.fromisoformat(held_pve["last_full"])
    expect(card.locator(".last-run")).to_contain_text("full sync")
    expect(card).to_contain_text(re.compile(r"[1-9]\d* changes? written"))
    assert page.evaluate("window.sameDocument === true"), "the page was reloaded"

    # A viewer (sync.view, not sync.run) follows the status but gets no "Run now"; no audit log either.
    viewer = f"sview{unique}"
    platform.create_user(viewer, role="viewer", admin=admin)
    other = another_console.page
    sign_in(other, viewer, PASSWORD)
    expect_signed_in(other)
    open_area(other, "Sync", "Sync")
    expect(other.locator('article[data-target="ldap"]').get_by_role("heading", name="LDAP directory")).to_be_visible()
    expect(other.get_by_role("button", name=re.compile("Run now|Sync everything"))).to_have_count(0)
    expect(other.get_by_role("navigation", name="Areas").get_by_role("link", name="Audit")).to_have_count(0)
