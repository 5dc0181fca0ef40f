"""The admin's usage pages: the request log (read-only, filtered, exported as CSV without secrets or formulas)
and the usage page of a key or credential with its charts, screenshotted in a real browser against the real
server."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from playwright.sync_api import Browser, Page, expect

from tests.browser import ARTIFACTS, admin_page, needs_chromium
from tests.factories import chatgpt_account, openai_key
from tests.gateway import Gateway
from tests.tokens.test_usage import entry
from tokens import admin_usage, usage
from tokens.admin_usage import CSV_HEADER
from tokens.models import ClientKey, Outcome, RequestLog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_usage")]
API_KEY = "sk-usage-admin-secret-0123456789abcdef"
MODELS = ("gpt-5", "gpt-5-mini", "o3", "gpt-4o")
LOG = "admin:tokens_requestlog_changelist"
USAGE = "admin:tokens_dailyusage_changelist"


def client_key(name: str) -> ClientKey:
    return ClientKey.objects.create(name=name, prefix=f"c2a-{name[:4]}", digest=f"digest-of-{name}")


@pytest.fixture
def traffic() -> dict[str, object]:
    """Thirty days of requests from two keys over two credentials and four models, recorded and flushed."""
    usage._buffer.clear()
    alice, bob = client_key("alice"), client_key("bob")
    team = openai_key("https://api.example.com/v1", API_KEY, label="team key")
    account = chatgpt_account("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJlLXNlY3JldA")
    draw, now = random.Random(11), time.time()
    for day in range(30):
        for model in MODELS:
            for n in range(draw.randint(0, 6 - MODELS.index(model))):
                failed = draw.random() < 0.1
                usage.record(
                    entry(
                        when=now - day * 86400 - n * 60,
                        key_id=(alice, bob)[n % 2].pk,
                        credential_id=(team, account)[day % 2].pk,
                        model=model,
                        kind=("openai", "chatgpt")[day % 2],
                        status=502 if failed else 200,
                        outcome=Outcome.UPSTREAM_ERROR if failed else Outcome.COMPLETED,
                        prompt_tokens=draw.randint(200, 2000),
                        completion_tokens=draw.randint(50, 900),
                        request_id=f"req_{draw.getrandbits(128):032x}",
                    )
                )
    usage.flush_now()
    return {"alice": alice, "bob": bob, "team": team, "account": account}


def exported(response) -> list[list[str]]:
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(asyncio.run(body(response)).decode())))


async def body(response) -> bytes:
    """The stream as the ASGI server reads it: asynchronously, a chunk at a time."""
    return b"".join([chunk async for chunk in response.streaming_content])


def test_export_csv_honours_the_list_filters(admin_client: Client, traffic, monkeypatch):
    monkeypatch.setattr(admin_usage, "CSV_CHUNK", 40)  # several pages of the stream
    rows = exported(admin_client.get(reverse("admin:tokens_requestlog_export") + "?outcome=upstream_error&model=o3"))
    assert rows[0] == list(CSV_HEADER)
    wanted = RequestLog.objects.filter(outcome=Outcome.UPSTREAM_ERROR, model="o3")
    assert sorted(row[-1] for row in rows[1:]) == sorted(wanted.values_list("request_id", flat=True))
    assert {(row[3], row[7], row[6]) for row in rows[1:]} == {("o3", "upstream_error", "502")}

    everything = exported(admin_client.get(reverse("admin:tokens_requestlog_export")))
    assert len(everything) - 1 == RequestLog.objects.count() > 3 * 40
    text = "\n".join(",".join(row) for row in everything)
    assert "team key" in text and "chatgpt eyJ…" in text and "alice" in text
    assert API_KEY not in text and traffic["account"].access_token not in text


def test_export_selected_rows_and_quote_formulas(admin_client: Client, traffic):
    usage.record(entry(key_id=traffic["alice"].pk, model="=HYPERLINK(1)", request_id="@req", credential_id=999))
    usage.flush_now()
    picked = list(RequestLog.objects.order_by("-pk").values_list("pk", flat=True)[:3])
    answer = admin_client.post(reverse(LOG), {"action": "export_selected", "_selected_action": picked})
    rows = exported(answer)
    assert len(rows) == 4
    assert rows[1][3] == "'=HYPERLINK(1)" and rows[1][-1] == "'@req" and rows[1][4] == "#999 (deleted)"


def test_the_log_is_read_only_and_its_page_costs_the_same_for_more_rows(admin_client: Client, traffic):
    assert admin_client.get(reverse("admin:tokens_requestlog_add")).status_code == 403
    row = RequestLog.objects.first()
    assert admin_client.post(reverse("admin:tokens_requestlog_delete", args=[row.pk])).status_code == 403
    assert admin_client.get(reverse("admin:tokens_requestlog_change", args=[row.pk])).status_code == 200

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    few, many = queries(reverse(LOG) + "?model=o3&outcome=upstream_error"), queries(reverse(LOG) + "?outcome=completed")
    assert few == many <= 7, (few, many)


def test_the_usage_page_of_a_key_charts_its_days(admin_client: Client, traffic):
    alice = traffic["alice"]
    html = admin_client.get(reverse(USAGE) + f"?key_id={alice.pk}").content.decode()
    assert "Usage of client key alice" in html
    charts = html[html.index('<section class="usage-overview">') : html.index("</section>")]
    assert charts.count("<svg") == 2 and "Requests per day" in charts and "Tokens per day" in charts
    assert charts.count("<rect") == 2 * len(usage.daily(usage.today() - timedelta(days=29), alice.pk))  # day x model
    assert all(model in html for model in MODELS)
    team = admin_client.get(reverse(USAGE) + f"?credential_id={traffic['team'].pk}").content.decode()
    assert "Usage of credential team key" in team and API_KEY not in team


@pytest.fixture
def page(browser: Browser, admin_gateway: Gateway, gateway_hasher) -> Iterator[Page]:
    with admin_page(browser, admin_gateway.url, "/admin/tokens/requestlog/") as page:
        yield page


@needs_chromium
def test_screenshots_of_the_log_and_the_usage_chart(page: Page, traffic):
    page.locator("#toggle-nav-sidebar").click()  # room for the columns
    page.goto("/admin/tokens/requestlog/")  # logged in before the traffic was made
    expect(page.locator("#result_list tbody tr")).to_have_count(50)
    expect(page.get_by_role("link", name="Export CSV")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "admin-request-log.png")

    page.goto(f"/admin/tokens/dailyusage/?key_id={traffic['alice'].pk}")
    expect(page.locator("h1")).to_have_text("Usage of client key alice")
    expect(page.locator("figure.usage-chart svg")).to_have_count(2)
    page.screenshot(path=ARTIFACTS / "admin-usage-chart.png")
    assert API_KEY not in page.content()
