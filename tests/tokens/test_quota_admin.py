"""The quota the Codex backend reports reaches the admin's list, which runs in another process than the gateway
(here without Redis: through the row the pool's flush writes), and the headroom pick uses it."""

from __future__ import annotations

import os
import re
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from tests import sdk
from tests.browser import ARTIFACTS, CHROMIUM, chromium
from tests.factories import codex_account
from tests.fakes.codex_server import ANSWER
from tests.gateway import settle
from tokens.models import Credential, Status

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "quota-admin-password"
# The fake's headers say 37 % of the 5 h window and 12 % of the week; its `codex.rate_limits` event then 38 %.
# "resets 19:40", or "resets Wed 00:01" when the reset falls on another day
ANSWERED = re.compile(r"5 h window 38 %, resets (?:\w{3} )?\d\d:\d\d · week 12 %")
USED_UP = re.compile(r"5 h window 37 %, resets (?:\w{3} )?\d\d:\d\d · week 12 %")


def ask(gateway) -> str:
    api = sdk.client(gateway.url)
    reply = api.chat.completions.create(model="gpt-5.5", messages=[{"role": "user", "content": "Say hello"}])
    return reply.choices[0].message.content


def flushed(*creds: Credential) -> bool:
    deadline = time.monotonic() + 5
    while not all(Credential.objects.get(pk=c.pk).quota for c in creds):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_admin_list_shows_each_accounts_quota_and_headroom_picks_by_it(gateway, fake_codex, settings):
    answering, used_up = codex_account(account_id="acc-ok-quota"), codex_account(account_id="acc-usage-quota")
    settle()
    # Whichever the first pick takes (both unknown: a tie), the second takes the one with more headroom: the
    # used-up account is tried exactly once, then cools until its reset.
    assert [ask(gateway), ask(gateway)] == [ANSWER, ANSWER]
    assert fake_codex.calls == {"acc-ok-quota": 2, "acc-usage-quota": 1}
    assert Credential.objects.get(pk=used_up.pk).status == Status.COOLING
    assert flushed(answering, used_up)

    # hashed as the gateway's own settings can check it (the tests' MD5 hasher is not among them)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    admin = Client()
    admin.force_login(User.objects.create_superuser("quota-admin", password=PASSWORD))
    html = admin.get(reverse("admin:tokens_credential_changelist")).content.decode()
    assert 'class="column-plan_quota"' in html
    text = re.sub(r"<[^>]+>", "", html)
    assert ANSWERED.search(text) and USED_UP.search(text), text
    screenshot(gateway)


def screenshot(gateway) -> None:
    """The list as the operator sees it, into tests/artifacts/admin-quota.png."""
    if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
        pytest.skip("no Debian chromium for the screenshot")
    with chromium() as browser:
        page = browser.new_page(base_url=gateway.url, viewport={"width": 1600, "height": 520})
        page.goto("/tokens")
        page.get_by_label("Username").fill("quota-admin")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("td.field-plan_quota").first).to_contain_text("5 h window")
        page.screenshot(path=ARTIFACTS / "admin-quota.png", full_page=True)
