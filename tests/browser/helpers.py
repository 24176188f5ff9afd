"""What browser tests do often: sign in through the page, read TOTP codes, save screenshots."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pyotp
from playwright.sync_api import Page, expect

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def screenshot(page: Page, name: str, tmp_path: Path | None = None) -> Path:
    """Saves the page as `<name>.png`: into docs/console/ when GATEHOUSE_SCREENSHOTS=1 (to
    refresh README's pictures), else into `tmp_path` (or nowhere without one). The path written."""
    if os.environ.get("GATEHOUSE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        target = SCREENSHOTS / f"{name}.png"
    elif tmp_path is not None:
        target = tmp_path / f"{name}.png"
    else:
        return Path()
    page.screenshot(path=str(target), full_page=True)
    return target


def sign_in(page: Page, login: str, password: str, *, path: str = "/sign-in") -> None:
    """Fills the sign-in form and sends it (whatever the answer)."""
    if not page.url.endswith(path):
        page.goto(path)
    page.get_by_label("Username or email").fill(login)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def expect_signed_in(page: Page) -> None:
    expect(page.get_by_role("button", name=re.compile(".+")).and_(page.locator(".user-button"))).to_be_visible()


def sign_out(page: Page) -> None:
    page.locator(".user-button").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def fresh_totp(secret: str, used: set[str] | None = None) -> str:
    """A current code of `secret` (pyotp: independent of Gatehouse's own TOTP code) that is not
    in `used`, waiting for the next time step if needed (each code works once)."""
    totp = pyotp.TOTP(secret)
    used = used if used is not None else set()
    deadline = time.monotonic() + 70
    while time.monotonic() < deadline:
        code = totp.now()
        if code not in used:
            used.add(code)
            return code
        time.sleep(0.5)
    raise AssertionError("no fresh TOTP code within two time steps")
