from __future__ import annotations

import re
import time
from datetime import timedelta
from html import unescape

import openai
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests import factories, sdk
from tests.fakes.base import FakeServer
from tests.gateway import Gateway
from tokens import overview, services, usage
from tokens.models import Credential, Kind, Outcome, Status

# exp 2100-01-01
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyIsImV4cCI6NDEwMjQ0NDgwMH0.c2lnbmF0dXJlLWFiY2RlZmdoaWprbG1ub3A"
RT = "Abcdefghijklmnopqrstuvwxyz0123456789_-ABCDEFG"  # the 45-character auth0 form
KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"
SECRETS = (JWT, RT, KEY)
MASKED_JWT, MASKED_KEY = "eyJ…ub3A", "sk-…3456"

CHANGELIST = reverse("admin:tokens_credential_changelist")
IMPORT = reverse("admin:tokens_credential_import")
CLEAR_ALL = reverse("admin:tokens_credential_clear_all")

pytestmark = pytest.mark.django_db


def assert_no_secret(html: str) -> None:
    for secret in SECRETS:
        assert secret not in html
        assert secret[4:-5] not in html  # not even the middle


@pytest.fixture
def creds() -> dict[str, Credential]:
    return {
        "chatgpt": factories.chatgpt_account(access_token=JWT, refresh_token=RT, account_id="acct-1"),
        "openai": factories.openai_key("https://api.example.com/v1", KEY, ["m1"]),
    }


def html_of(client: Client, url: str, **params: str) -> str:
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


def post_action(client: Client, action: str, *creds: Credential) -> None:
    data = {"action": action, "_selected_action": [c.pk for c in creds]}
    assert client.post(CHANGELIST, data).status_code == 302


# -- the list ------------------------------------------------------------------------------------


def test_list_shows_masked_secrets_only(admin_client: Client, creds: dict[str, Credential]) -> None:
    html = html_of(admin_client, CHANGELIST)
    assert MASKED_JWT in html
    assert MASKED_KEY in html
    assert "https://api.example.com/v1" in html
    assert "acct-1" in html
    assert_no_secret(html)


def test_last_error_is_redacted_and_truncated(admin_client: Client, creds: dict[str, Credential]) -> None:
    error = f"401 Incorrect API key provided: {KEY}. Another: {JWT}. " + "x" * 400
    Credential.objects.filter(pk=creds["openai"].pk).update(last_error=error)
    html = html_of(admin_client, CHANGELIST)
    assert "401 Incorrect API key provided: sk-…3456" in html
    assert "x" * 250 not in html  # the tooltip holds 300 characters
    assert_no_secret(html)
    assert_no_secret(html_of(admin_client, reverse("admin:tokens_credential_change", args=[creds["openai"].pk])))


@pytest.mark.parametrize(
    ("kind", "shown", "hidden"), [("openai", MASKED_KEY, MASKED_JWT), ("chatgpt", MASKED_JWT, MASKED_KEY)]
)
def test_filter_by_kind(admin_client: Client, creds: dict[str, Credential], kind: str, shown: str, hidden: str) -> None:
    html = html_of(admin_client, CHANGELIST, kind__exact=kind)
    assert shown in html
    assert hidden not in html


def test_filter_by_status(admin_client: Client, creds: dict[str, Credential]) -> None:
    Credential.objects.filter(pk=creds["openai"].pk).update(status=Status.DISABLED)
    html = html_of(admin_client, CHANGELIST, status__exact="disabled")
    assert MASKED_KEY in html
    assert MASKED_JWT not in html


def test_search_by_account_id_and_base_url(admin_client: Client, creds: dict[str, Credential]) -> None:
    assert MASKED_JWT in html_of(admin_client, CHANGELIST, q="acct-1")
    html = html_of(admin_client, CHANGELIST, q="api.example.com")
    assert MASKED_KEY in html
    assert MASKED_JWT not in html


def test_search_does_not_match_secrets(admin_client: Client, creds: dict[str, Credential]) -> None:
    assert MASKED_KEY not in html_of(admin_client, CHANGELIST, q="QRSTUV")


def test_tokens_redirects_to_the_changelist(client: Client) -> None:
    response = client.get("/tokens")
    assert response.status_code in (301, 302)
    assert response.url == CHANGELIST


# -- the pool at a glance -----------------------------------------------------------------------


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def cell(html: str, column: str, cred: Credential) -> str:
    """The text of one column in one credential's row."""
    row = re.search(rf'<tr>(?:(?!</tr>).)*?value="{cred.pk}"(?:(?!</tr>).)*</tr>', html, re.S)
    assert row, f"no row for #{cred.pk}"
    found = re.search(rf'class="field-{column}"[^>]*>(.*?)</t[dh]>', row.group(), re.S)
    assert found, f"no column {column}"
    return text_of(found.group(1))


def logged(cred: Credential, ago: float = 0, outcome: str = Outcome.COMPLETED, tokens: int = 0) -> usage.Entry:
    """A request as the gateway logs it (`usage.write` stores it and its daily roll-up)."""
    status = 200 if outcome == Outcome.COMPLETED else 502
    return usage.Entry(
        *(time.time() - ago, None, "chat.completions", "gpt-4o", cred.pk, cred.kind, status, outcome),
        *(tokens, 0, 0, 0, None, 10, "req_test"),
    )


def test_status_says_what_is_true_now(admin_client: Client) -> None:
    now = timezone.now()
    ended = factories.openai_key("https://a.example/v1", "sk-ended-ABCDEFGHIJKLMN", status=Status.COOLING)
    ended.cooldown_until = now - timedelta(seconds=5)
    ended.save()
    cooling = factories.openai_key("https://b.example/v1", "sk-cooling-ABCDEFGHIJKLMN", status=Status.COOLING)
    cooling.cooldown_until = now + timedelta(seconds=200)
    cooling.save()
    per_model = factories.openai_key("https://c.example/v1", "sk-model-ABCDEFGHIJKLMN", status=Status.COOLING)
    per_model.model_cooldowns = {"gpt-4o": (now + timedelta(seconds=150)).isoformat()}
    per_model.save()
    invalid = factories.openai_key("https://d.example/v1", "sk-invalid-ABCDEFGHIJKLMN", status=Status.INVALID)
    html = html_of(admin_client, CHANGELIST)
    assert cell(html, "state", ended) == "Active"
    assert cell(html, "state", cooling) == "Cooling · 3 min left"
    assert cell(html, "state", per_model) == "Cooling · gpt-4o 2 min"
    assert cell(html, "state", invalid) == "Invalid"


def test_summary_counts_each_kind_by_state_and_the_last_hour(admin_client: Client, fresh_usage) -> None:
    later = timezone.now() + timedelta(minutes=5)
    for status in (Status.ACTIVE, Status.COOLING, Status.INVALID, Status.DISABLED):
        factories.openai_key("https://a.example/v1", f"sk-{status}-ABCDEFGHIJKLMN", status=status)
    Credential.objects.filter(status=Status.ACTIVE).update(cooldown_until=later)  # cooling, whatever the row says
    account = factories.chatgpt_account(JWT)
    Credential.objects.filter(pk=account.pk).update(status=Status.REFRESHING)
    usage.write([logged(account), logged(account, outcome=Outcome.UPSTREAM_ERROR), logged(account, ago=7200)])
    html = html_of(admin_client, CHANGELIST)
    summary = text_of(re.search(r'<section class="pool-summary".*?</section>', html, re.S).group())
    assert "chatgpt (1) 0 usable · 1 refreshing" in summary
    assert "openai (4) 1 usable · 1 cooling · 1 invalid · 1 disabled" in summary
    assert "codex" not in summary
    assert "Last hour 2 requests · 1 error" in summary


def test_expiry_last_use_and_label(admin_client: Client, creds: dict[str, Credential]) -> None:
    now = timezone.now()
    account, key = creds["chatgpt"], creds["openai"]
    Credential.objects.filter(pk=account.pk).update(
        access_token_expires_at=now - timedelta(hours=2, minutes=1), last_used_at=now - timedelta(minutes=5, seconds=2)
    )
    Credential.objects.filter(pk=key.pk).update(label="team key")
    html = html_of(admin_client, CHANGELIST)
    assert cell(html, "expires", account) == "expired 2 h ago"
    assert cell(html, "last_used", account) == "5 min ago"
    assert cell(html, "expires", key) == cell(html, "last_used", key) == cell(html, "short_label", account) == ""
    assert cell(html, "short_label", key) == "team key"
    assert cell(html, "upstream", key) == "api.example.com/v1"
    assert 'title="https://api.example.com/v1"' in html
    fresh = factories.codex_account(lifetime=3 * 86400 + 60)
    assert cell(html_of(admin_client, CHANGELIST), "expires", fresh) == "in 3 d"


def test_usage_columns_link_to_the_usage_page_in_one_query_a_page(admin_client: Client) -> None:
    used = factories.openai_key("https://a.example/v1", "sk-used-ABCDEFGHIJKLMN")
    idle = factories.openai_key("https://b.example/v1", "sk-idle-ABCDEFGHIJKLMN")
    usage.write(
        [logged(used, tokens=1200)] * 12
        + [logged(used, ago=10 * 86400, tokens=1_000_000), logged(used, ago=40 * 86400, tokens=5_000_000)]
    )
    html = html_of(admin_client, CHANGELIST)
    assert cell(html, "usage_today", used) == "12 req · 14k tok"
    assert cell(html, "usage_30_days", used) == "13 req · 1M tok"
    assert cell(html, "usage_today", idle) == cell(html, "usage_30_days", idle) == ""
    assert f'href="{reverse("admin:tokens_dailyusage_changelist")}?credential_id={used.pk}"' in html

    with CaptureQueriesContext(connection) as two:
        html_of(admin_client, CHANGELIST)
    for n in range(5):
        usage.write([logged(factories.openai_key("https://c.example/v1", f"sk-more-{n}-ABCDEFGHIJKLMN"), tokens=5)])
    with CaptureQueriesContext(connection) as seven:
        html_of(admin_client, CHANGELIST)
    assert len(seven) == len(two)


@pytest.mark.parametrize(
    ("n", "shown"), [(0, "0"), (950, "950"), (3400, "3.4k"), (3499, "3.4k"), (12_345, "12k"), (1_250_000, "1.2M")]
)
def test_amounts_are_short(n: int, shown: str) -> None:
    assert overview.amount(n) == shown


# -- the change form -----------------------------------------------------------------------------


def test_change_form_masks_secrets(admin_client: Client, creds: dict[str, Credential]) -> None:
    for cred in creds.values():
        html = html_of(admin_client, reverse("admin:tokens_credential_change", args=[cred.pk]))
        assert_no_secret(html)
    assert f"{MASKED_JWT} (leave empty to keep)" in html_of(
        admin_client, reverse("admin:tokens_credential_change", args=[creds["chatgpt"].pk])
    )


def change_data(cred: Credential, **overrides: str) -> dict[str, str]:
    data = {
        "kind": cred.kind,
        "label": cred.label,
        "access_token": "",
        "refresh_token": "",
        "api_key": "",
        "account_id": cred.account_id,
        "base_url": cred.base_url,
        "wire_api": cred.wire_api,
        "model_names": "m1",
        "max_concurrency": "0",
        "status": cred.status,
        "cooldown_until_0": "",
        "cooldown_until_1": "",
    }
    return {**data, **overrides}


def test_model_names_are_edited_as_text(admin_client: Client, creds: dict[str, Credential]) -> None:
    cred = creds["openai"]
    url = reverse("admin:tokens_credential_change", args=[cred.pk])
    assert ">\nm1</textarea>" in html_of(admin_client, url)
    response = admin_client.post(url, change_data(cred, model_names="gpt-4o, gpt-4o-mini\n o3 \n\ngpt-4o"))
    assert response.status_code == 302, response.content.decode()
    cred.refresh_from_db()
    assert cred.model_names == ["gpt-4o", "gpt-4o-mini", "o3"]
    assert ">\ngpt-4o\ngpt-4o-mini\no3</textarea>" in html_of(admin_client, url)


def test_change_form_shows_cooldowns_and_quota_readably(admin_client: Client, creds: dict[str, Credential]) -> None:
    now = timezone.now()
    cred = creds["chatgpt"]
    cred.model_cooldowns = {"gpt-4o": (now + timedelta(seconds=200)).isoformat(), "o3": now.isoformat()}
    cred.quota = {"p_used": "37.0", "p_minutes": "300", "s_used": "12.0", "s_minutes": "10080"}
    cred.status = Status.COOLING
    cred.save()
    url = reverse("admin:tokens_credential_change", args=[cred.pk])
    html = html_of(admin_client, url)
    until = timezone.localtime(now + timedelta(seconds=200)).strftime("%H:%M")
    assert f"gpt-4o until {until} (in 3\u00a0min)<br>o3 until {timezone.localtime(now):%H:%M} (ended)" in html
    assert "5 h window 37 %" in text_of(html) and "week 12 %" in text_of(html)
    assert 'name="model_cooldowns"' not in html
    response = admin_client.post(url, {**change_data(cred), "model_cooldowns": "{}"})
    assert response.status_code == 302
    assert Credential.objects.get(pk=cred.pk).model_cooldowns == cred.model_cooldowns  # read-only


def test_empty_secret_keeps_the_old_one(admin_client: Client, creds: dict[str, Credential]) -> None:
    cred = creds["openai"]
    url = reverse("admin:tokens_credential_change", args=[cred.pk])
    response = admin_client.post(url, change_data(cred, label="team key"))
    assert response.status_code == 302, response.content.decode()
    cred.refresh_from_db()
    assert (cred.label, cred.api_key) == ("team key", KEY)
    entry = LogEntry.objects.get(object_id=str(cred.pk))
    assert "api_key" not in entry.change_message.lower().replace(" ", "_")
    assert_no_secret(entry.object_repr + entry.change_message)


def test_typed_secret_replaces_the_old_one(admin_client: Client, creds: dict[str, Credential]) -> None:
    cred = creds["openai"]
    new_key = "sk-new-ZYXWVUTSRQPONMLKJIHGFEDCBA9876"
    response = admin_client.post(
        reverse("admin:tokens_credential_change", args=[cred.pk]), change_data(cred, api_key=new_key)
    )
    assert response.status_code == 302
    cred.refresh_from_db()
    assert cred.api_key == new_key
    assert cred.fingerprint == cred.compute_fingerprint()
    history = html_of(admin_client, reverse("admin:tokens_credential_history", args=[cred.pk]))
    assert new_key not in history
    assert_no_secret(history)


def test_change_form_refuses_a_duplicate(admin_client: Client, creds: dict[str, Credential]) -> None:
    response = admin_client.post(
        reverse("admin:tokens_credential_add"), change_data(creds["openai"], api_key=KEY, label="twin")
    )
    assert response.status_code == 200
    assert "already stored" in response.content.decode()
    assert_no_secret(response.content.decode())
    assert Credential.objects.count() == 2


def test_view_only_user_sees_masked_secrets(client: Client, creds: dict[str, Credential]) -> None:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_credential"))
    client.force_login(user)
    html = html_of(client, reverse("admin:tokens_credential_change", args=[creds["chatgpt"].pk]))
    assert MASKED_JWT in html
    assert_no_secret(html)
    assert client.get(IMPORT).status_code == 403
    assert client.get(CLEAR_ALL).status_code == 403


def test_delete_confirmation_masks(admin_client: Client, creds: dict[str, Credential]) -> None:
    assert_no_secret(html_of(admin_client, reverse("admin:tokens_credential_delete", args=[creds["openai"].pk])))


# -- actions -------------------------------------------------------------------------------------


def test_disable_action_bumps_the_pool_signature(admin_client: Client, creds: dict[str, Credential]) -> None:
    before = services.pool_signature()
    post_action(admin_client, "disable_selected", creds["openai"])
    assert Credential.objects.get(pk=creds["openai"].pk).status == Status.DISABLED
    assert Credential.objects.get(pk=creds["chatgpt"].pk).status == Status.ACTIVE
    assert services.pool_signature() != before


def test_enable_action_clears_cooldowns_and_error(admin_client: Client, creds: dict[str, Credential]) -> None:
    soon = timezone.now() + timedelta(minutes=5)
    Credential.objects.update(
        status=Status.INVALID, cooldown_until=soon, model_cooldowns={"m1": soon.isoformat()}, last_error="boom"
    )
    post_action(admin_client, "enable_selected", creds["openai"])
    cred = Credential.objects.get(pk=creds["openai"].pk)
    assert (cred.status, cred.cooldown_until, cred.model_cooldowns, cred.last_error) == (Status.ACTIVE, None, {}, "")
    assert Credential.objects.get(pk=creds["chatgpt"].pk).status == Status.INVALID


def test_clear_cooldown_action(admin_client: Client, creds: dict[str, Credential]) -> None:
    soon = timezone.now() + timedelta(minutes=5)
    Credential.objects.filter(pk=creds["openai"].pk).update(status=Status.COOLING, cooldown_until=soon)
    Credential.objects.filter(pk=creds["chatgpt"].pk).update(
        status=Status.NEEDS_REFRESH, model_cooldowns={"gpt-4o": soon.isoformat()}
    )
    post_action(admin_client, "clear_cooldown_selected", *creds.values())
    openai, chatgpt = (Credential.objects.get(pk=creds[kind].pk) for kind in ("openai", "chatgpt"))
    assert (openai.status, openai.cooldown_until) == (Status.ACTIVE, None)
    assert (chatgpt.status, chatgpt.model_cooldowns) == (Status.NEEDS_REFRESH, {})


def test_clear_all_asks_then_deletes(admin_client: Client, creds: dict[str, Credential]) -> None:
    assert CLEAR_ALL in html_of(admin_client, CHANGELIST)
    html = html_of(admin_client, CLEAR_ALL)
    assert "Delete all 2 credentials?" in html
    assert "csrfmiddlewaretoken" in html
    assert Credential.objects.count() == 2
    response = admin_client.post(CLEAR_ALL, follow=True)
    assert Credential.objects.count() == 0
    assert "Deleted all 2 credential(s)." in response.content.decode()


def test_clear_all_requires_csrf(admin_user: User, creds: dict[str, Credential]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(CLEAR_ALL).status_code == 403
    assert Credential.objects.count() == 2


# -- import --------------------------------------------------------------------------------------


def test_import_page(admin_client: Client) -> None:
    assert IMPORT in html_of(admin_client, CHANGELIST)
    html = html_of(admin_client, IMPORT)
    assert 'enctype="multipart/form-data"' in html
    assert "csrfmiddlewaretoken" in html


IMPORT_TEXT = f"# pool\n{JWT},acct-1\nopenai ftp://bad {KEY}\n\n{RT}\nopenai https://api.example.com/v1 {KEY} m1,m2\n"


def assert_imported(html: str) -> None:
    assert "3 created, 0 updated, 0 duplicates skipped" in html
    assert "Line 3: base URL is not an http(s) URL (key sk-…3456)" in html
    assert_no_secret(html)
    assert Credential.objects.count() == 3
    assert Credential.objects.get(kind=Kind.OPENAI).model_names == ["m1", "m2"]


def test_import_by_textarea(admin_client: Client) -> None:
    response = admin_client.post(IMPORT, {"text": IMPORT_TEXT}, follow=True)
    assert response.redirect_chain[-1][0] == CHANGELIST
    assert_imported(response.content.decode())


def test_import_by_file_upload(admin_client: Client) -> None:
    upload = SimpleUploadedFile("tokens.txt", ("\ufeff" + IMPORT_TEXT).encode(), content_type="text/plain")
    response = admin_client.post(IMPORT, {"file": upload}, follow=True)
    assert_imported(response.content.decode())


def test_reimport_does_not_duplicate(admin_client: Client) -> None:
    admin_client.post(IMPORT, {"text": IMPORT_TEXT})
    html = admin_client.post(IMPORT, {"text": IMPORT_TEXT}, follow=True).content.decode()
    assert "0 created, 0 updated, 3 duplicates skipped" in html
    assert Credential.objects.count() == 3


def test_import_needs_text_or_file_and_does_not_echo_it(admin_client: Client) -> None:
    upload = SimpleUploadedFile("tokens.txt", RT.encode())
    response = admin_client.post(IMPORT, {"text": KEY, "file": upload})
    assert response.status_code == 200
    assert "Paste text or upload a file" in response.content.decode()
    assert_no_secret(response.content.decode())
    assert Credential.objects.count() == 0
    assert "Paste text or upload a file" in admin_client.post(IMPORT, {"text": "  "}).content.decode()


def test_import_refuses_a_binary_file(admin_client: Client) -> None:
    upload = SimpleUploadedFile("tokens.bin", b"\xff\xfe\x00bad")
    assert "not UTF-8 text" in admin_client.post(IMPORT, {"file": upload}).content.decode()


def test_import_requires_csrf(admin_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(IMPORT, {"text": RT}).status_code == 403
    assert Credential.objects.count() == 0


# -- end to end: the operator's page drives a running gateway -------------------------------------


def ask(gateway: Gateway) -> str:
    client = sdk.client(gateway.url)
    messages = [{"role": "user", "content": "hi"}]
    try:
        reply = client.chat.completions.create(model="fake-model", messages=messages)
    except openai.APIStatusError as err:
        return f"error {err.status_code}"
    return reply.choices[0].message.content or ""


def seconds_until(gateway: Gateway, expected: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 5:
        if ask(gateway).startswith(expected):
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"gateway never answered {expected!r}")


@pytest.mark.django_db(transaction=True)
def test_import_disable_enable_clear_all_reach_the_gateway(
    admin_client: Client, gateway: Gateway, fake_openai: FakeServer
) -> None:
    """Each page bumps the pool signature; without a bump the change would never be seen. (The one-second
    bound itself is test_pool_reload's; here the machine's load would make it flaky.)"""
    admin_client.post(IMPORT, {"text": f"openai {fake_openai.url}/v1 sk-ok-admin fake-model"})
    seconds_until(gateway, "Hello")
    cred = Credential.objects.get()
    post_action(admin_client, "disable_selected", cred)
    seconds_until(gateway, "error")
    post_action(admin_client, "enable_selected", cred)
    seconds_until(gateway, "Hello")
    admin_client.post(CLEAR_ALL)
    seconds_until(gateway, "error")
