"""The admin's "Sign in a ChatGPT account" in a real browser (Debian's Chromium) against the real server and
the fake issuer: get a code, approve it on the issuer's page, and the account is in the list."""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import pairwise

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from tests.browser import ARTIFACTS, admin_page, needs_chromium
from tests.fakes.base import FakeServer
from tests.fakes.codex_issuer import ISSUER
from tests.gateway import Gateway
from tokens.models import Credential, Kind

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def page(browser: Browser, admin_gateway: Gateway, gateway_hasher) -> Iterator[Page]:
    with admin_page(browser, admin_gateway.url, "/admin/tokens/credential/") as page:
        yield page


@needs_chromium
def test_device_sign_in_stores_the_account(page: Page, fake_oauth: FakeServer) -> None:
    issuer = fake_oauth.app[ISSUER]
    issuer.polls.clear()
    page.get_by_role("link", name="Sign in a ChatGPT account").click()
    page.get_by_role("button", name="Get a code").click()
    url = page.locator("#codex-verification-url").get_attribute("href")
    code = page.locator("#codex-user-code").inner_text()
    assert url == f"{fake_oauth.url}/codex/device" and re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{6}", code)

    expect(page.locator("#codex-status")).to_contain_text("Waiting")
    user = page.context.new_page()  # the operator, signed in at the issuer, enters the code there
    user.goto(url)
    user.locator("#user_code").fill(code)
    user.get_by_role("button", name="Continue").click()
    expect(user.locator("body")).to_have_text("Approved")

    expect(page).to_have_url(re.compile(r"/admin/tokens/credential/$"), timeout=15000)
    expect(page.locator("ul.messagelist")).to_contain_text("Signed in ChatGPT account acc-device-1 (pro)")
    page.screenshot(path=ARTIFACTS / "codex-sign-in.png")
    cred = Credential.objects.get()
    assert (cred.kind, cred.account_id, cred.plan, cred.user_id) == (Kind.CODEX, "acc-device-1", "pro", "user-device")
    assert cred.refresh_token.startswith("rt_") and cred.refresh_token not in page.content()
    assert len(issuer.polls) >= 1
    assert all(later - earlier >= 0.9 * issuer.interval for earlier, later in pairwise(issuer.polls))


def test_a_step_without_a_running_sign_in_fails(client: Client) -> None:
    User.objects.create_superuser("operator", password=PASSWORD)
    client.login(username="operator", password=PASSWORD)
    answer = client.post(reverse("admin:tokens_credential_sign_in_poll")).json()
    assert answer["state"] == "failed" and "get a new code" in answer["message"]


def test_an_issuer_without_device_sign_in_is_reported(client: Client, settings, fake_openai: FakeServer) -> None:
    settings.CODEX_AUTH_URL = fake_openai.url  # answers 404 at the device-code endpoint
    User.objects.create_superuser("operator", password=PASSWORD)
    client.login(username="operator", password=PASSWORD)
    html = client.post(reverse("admin:tokens_credential_sign_in")).content.decode()
    assert "device code sign-in is not enabled" in html
