"""Browser tests: the console in real headless Chromium (Debian's `chromium`, driven by
Playwright; no browser is ever downloaded) against the real platform of tests/conftest.py.

Fixtures:
- `browser`: one Chromium for the browser tests.
- `console`: a fresh browser context (no cookies) on the platform, from an address of its own
  (so one test's failed sign-ins never throttle another); `console.page` is its page,
  `console.url(path)` an absolute URL, `console.new_page()` a second tab of the same context.
  After the test it fails on any uncaught script error or Content-Security-Policy violation.
- `another_console`: a second, independent browser (another person).
- `smtp`: the platform's mail goes to the `mailbox` fixture's test SMTP server.
Helpers for the tests are in tests/browser/helpers.py (sign-in, screenshots, TOTP).
"""
from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from tests.harness import random_client_ip

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 860}
TIMEOUT_MS = 20_000  # generous: the machine is shared


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The console is the same on either database: its tests run in the SQLite pass only."""
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.sqlite_only)
    # The Tenants page's "Enable multi-tenancy" can be clicked only while the shared platform is
    # single-tenant: its test goes first, before any other test enables multi-tenancy.
    items.sort(key=lambda item: "tests/browser/test_tenants_connections.py" not in item.nodeid)


@pytest.fixture(scope="package")  # closed (with Playwright's event loop) before other tests run
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console:
    """One person's browser on the console."""

    def __init__(self, browser, base_url: str, viewport: dict | None = None):
        self.base_url = base_url
        self.client_ip = random_client_ip()
        self.context = browser.new_context(base_url=base_url, viewport=viewport or VIEWPORT,
                                           extra_http_headers={"X-Forwarded-For": self.client_ip})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console_message)
        return page

    def _console_message(self, message) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text or "Refused to" in text:
            self.problems.append(f"CSP: {text}")

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(platform, browser):
    opened = Console(browser, platform.url)
    yield opened
    opened.close()
    assert not opened.problems, "\n".join(opened.problems)


@pytest.fixture
def another_console(platform, browser):
    opened = Console(browser, platform.url)
    yield opened
    opened.close()
    assert not opened.problems, "\n".join(opened.problems)


@pytest.fixture(scope="session")
def smtp(platform, mailbox):
    """Points the platform's mail at the test SMTP server (for invitations and resets)."""
    response = platform.admin().put("/api/v1/settings/smtp", json=mailbox.smtp_settings())
    assert response.status_code == 200, response.text
    return mailbox
