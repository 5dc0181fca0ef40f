"""The credential list and form as the operator sees them in Chromium at 1280 px: every column on the screen (no
horizontal scroll bar, in the page or in the table's own box), the true state of each credential, and the
screenshots tests/artifacts/admin-pool.png and admin-credential-form.png to look at."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from tests import factories
from tests.browser import ARTIFACTS, admin_page, needs_chromium
from tests.fakes.codex_issuer import codex_jwt
from tests.gateway import Gateway
from tokens import usage
from tokens.models import Credential, Outcome, Status

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]
WIDTH = 1280
WORKSPACE = "d3c9e6f2-1b7a-4c55-9a0e-6f1c2b3d4e5f"
LONG_ERROR = "upstream answered 401: " + "Your authentication token has been invalidated. " * 4


@pytest.fixture
def page(browser: Browser, admin_gateway: Gateway, gateway_hasher) -> Iterator[Page]:
    with admin_page(browser, admin_gateway.url, "/admin/tokens/credential/", width=WIDTH) as page:
        yield page


def pool() -> dict[str, Credential]:
    """A few credentials of each kind and state, used a little."""
    now = timezone.now()
    creds = {
        "main": factories.codex_account("acc-team-main-0001", lifetime=9 * 86400),
        "used_up": factories.codex_account("acc-plus-used-up-0002", user_id="user-2", lifetime=86400),
        "ended": factories.chatgpt_account(codex_jwt("acc-web-1", lifetime=5 * 86400), "acc-web-1"),
        "cooling": factories.chatgpt_account(codex_jwt("acc-web-2", lifetime=3600), "acc-web-2"),
        "invalid": factories.chatgpt_account("", "acc-web-3", refresh_token="rt_" + "x" * 40),
        "local": factories.openai_key("http://127.0.0.1:8080/v1", "sk-local-ABCDEFGHIJKLMNOP", label="llama.cpp"),
        "far": factories.openai_key(
            "https://very-long-host-name.inference.example.com/openai/deployments/prod/v1",
            "sk-far-ABCDEFGHIJKLMNOP",
            ["gpt-4o", "gpt-4o-mini", "o3"],
            label="Azure production deployment (EU West)",
            status=Status.COOLING,
        ),
        "off": factories.openai_key("https://api.example.com/v1", "sk-off-ABCDEFGHIJKLMNOP", status=Status.DISABLED),
        "worn": factories.chatgpt_account(codex_jwt("acc-web-4", lifetime=-22 * 3600), WORKSPACE),
    }
    ends = {"gpt-5.5": now + timedelta(minutes=20, seconds=30), "gpt-5.4": now - timedelta(minutes=1)}
    update(creds["main"], label="team", quota=reported(37))
    update(
        creds["used_up"],
        status=Status.COOLING,
        cooldown_until=now + timedelta(minutes=50, seconds=30),
        model_cooldowns={model: until.isoformat() for model, until in ends.items()},
        model_names=["gpt-5.5", "gpt-5.4"],
        quota=reported(100),
        last_error=LONG_ERROR,
    )
    update(creds["ended"], status=Status.COOLING, cooldown_until=now - timedelta(minutes=1))
    update(
        creds["cooling"],
        status=Status.COOLING,
        model_cooldowns={"gpt-4o": (now + timedelta(minutes=2, seconds=30)).isoformat()},
    )
    update(creds["invalid"], status=Status.INVALID, last_error="refresh refused: invalid_grant")
    update(
        creds["worn"],
        label="Operations team workspace",
        status=Status.NEEDS_REFRESH,
        model_cooldowns={"gpt-4o-mini-2024-07-18": (now + timedelta(minutes=44)).isoformat()},
        last_used_at=now - timedelta(minutes=59),
        last_error="x" * 500,
    )
    update(creds["far"], cooldown_until=now + timedelta(minutes=3), last_used_at=now - timedelta(minutes=5))
    usage.write(
        [log(creds["main"], tokens=2800)] * 12
        + [log(creds["main"], ago=3 * 86400, tokens=1_200_000), log(creds["far"], outcome=Outcome.UPSTREAM_ERROR)]
        + [log(creds["worn"], ago=7200, tokens=9_999_999)] * 1234
    )
    return creds


def reported(used: float) -> dict[str, str]:
    """A Codex quota report as the pool's flush stores it on the row: the 5 h window `used` %, the week 12 %."""
    resets = time.time() + 3 * 3600
    return {
        **{"p_used": repr(float(used)), "p_minutes": "300", "p_resets": repr(resets)},
        **{"s_used": "12.0", "s_minutes": "10080", "s_resets": repr(resets + 5 * 86400)},
    }


def update(cred: Credential, **fields: object) -> None:
    Credential.objects.filter(pk=cred.pk).update(**fields)


def log(cred: Credential, ago: float = 0, outcome: str = Outcome.COMPLETED, tokens: int = 0) -> usage.Entry:
    status = 200 if outcome == Outcome.COMPLETED else 502
    return usage.Entry(
        *(time.time() - ago, None, "chat.completions", "gpt-4o", cred.pk, cred.kind, status, outcome),
        *(tokens, 0, 0, 0, None, 10, "req_browser"),
    )


def overflow(page: Page) -> dict[str, int]:
    """How wide the page and the table's box are, against how wide they may be."""
    return page.evaluate(
        """() => {
            const results = document.querySelector('#changelist .results');
            return {page: document.documentElement.scrollWidth, results: results.scrollWidth,
                    box: results.clientWidth};
        }"""
    )


def test_the_pool_fits_1280_px_and_says_what_is_true_now(page: Page, fresh_usage) -> None:
    creds = pool()
    page.reload()
    row = {name: page.locator(f"#result_list tr:has(input[value='{cred.pk}'])") for name, cred in creds.items()}
    expect(row["ended"].locator("td.field-state")).to_have_text("Active")
    expect(row["cooling"].locator("td.field-state")).to_have_text("Cooling · gpt-4o 2 min")
    expect(row["used_up"].locator("td.field-state")).to_have_text("Cooling · 50 min left, gpt-5.5 20 min")
    expect(row["invalid"].locator("td.field-state")).to_have_text("Invalid")
    expect(row["main"].locator("td.field-plan_quota")).to_contain_text("5 h window 37 %")
    expect(row["main"].locator("td.field-usage_today")).to_have_text("12 req · 33k tok")
    expect(row["main"].locator("td.field-expires")).to_have_text("in 8 d")
    expect(row["far"].locator("td.field-last_used")).to_have_text("5 min ago")
    expect(row["worn"].locator("td.field-state")).to_have_text("Needs refresh · gpt-4o-mini-2024-07-18 43 min")
    expect(row["worn"].locator("td.field-expires")).to_have_text("expired 22 h ago")
    expect(row["worn"].locator("td.field-usage_30_days")).to_have_text("1.2k req · 12G tok")
    expect(row["worn"].locator("td.field-upstream span")).to_have_attribute("title", WORKSPACE)
    expect(page.locator(".pool-summary")).to_contain_text("13 requests · 1 error")

    sizes = overflow(page)
    assert sizes["page"] <= WIDTH and sizes["results"] <= sizes["box"], sizes
    page.screenshot(path=ARTIFACTS / "admin-pool.png", full_page=True)

    page.goto(f"/admin/tokens/credential/{creds['used_up'].pk}/change/")
    expect(page.locator("textarea[name=model_names]")).to_have_value("gpt-5.5\ngpt-5.4")
    expect(page.locator(".field-model_cooldown_lines .readonly")).to_contain_text("gpt-5.4 until")
    expect(page.locator(".field-plan_quota .readonly")).to_contain_text("5 h window 100 %")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    page.screenshot(path=ARTIFACTS / "admin-credential-form.png", full_page=True)
