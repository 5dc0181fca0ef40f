"""Debian's Chromium driven by Playwright (never a downloaded browser), for the tests of real pages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots, for a person to look at
CHROMIUM = "/usr/bin/chromium"
ADMIN_PASSWORD = "correct-horse-battery-staple"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Skipped only on a developer's machine without chromium; CI installs it, so there a missing one fails.
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"), reason="no chromium")


@contextmanager
def chromium() -> Iterator[Browser]:
    """A launched browser; the test's own ORM calls stay allowed beside Playwright's event loop on this thread."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            ARTIFACTS.mkdir(exist_ok=True)
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@contextmanager
def admin_page(browser: Browser, url: str, next_path: str, width: int = 1280) -> Iterator[Page]:
    """A page of the admin at `url`, logged in as a new superuser, opened at `next_path`. The test's settings must
    hash passwords as the gateway does (see the `admin_gateway` fixture's users)."""
    from django.contrib.auth.models import User

    User.objects.create_superuser("operator", password=ADMIN_PASSWORD)
    context = browser.new_context(base_url=url, viewport={"width": width, "height": 900})
    context.set_default_timeout(10000)
    try:
        page = context.new_page()
        page.goto(f"/admin/login/?next={next_path}")
        page.get_by_label("Username").fill("operator")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        yield page
    finally:
        context.close()
