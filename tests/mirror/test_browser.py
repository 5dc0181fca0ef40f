"""The chat page in a real browser (Debian's Chromium, headless, off the network) against the real server
and the fake upstreams: log in, chat, stop, switch model, log out, and no upstream secret in the browser."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from mirror.models import Conversation
from tests.browser import ARTIFACTS, needs_chromium
from tests.factories import chatgpt_account, openai_key
from tests.fakes.oauth_server import access_token
from tests.gateway import settle
from tests.mirror.helpers import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Skipped on a developer's machine without it; CI (CI=true) installs it, and fails if it is missing.
    needs_chromium,
]
# Distinctive secrets, searched for in everything the browser receives.
API_KEY = "sk-ok-Zq8SECRETkeyW4x7Tn2Lp9Vb"
REFRESH_TOKEN = "rt-SECRETrefreshQm3Kd8Xw1Hy6"
POOL_ACCESS_TOKEN = access_token("ok-SECRETpoolAccessN5j2Gq")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def page(browser: Browser, page_gateway) -> Iterator[Page]:
    context = browser.new_context(base_url=page_gateway.url, viewport={"width": 1180, "height": 780})
    context.set_default_timeout(8000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def keys(fake_openai, page_gateway):
    base = fake_openai.url + "/v1"
    openai_key(base, API_KEY, ["fake-model"])
    openai_key(base, "sk-rich-page", ["rich-model"])
    openai_key(base, "sk-long-page", ["long-model"])
    openai_key(base, "sk-429-page", ["limited-model"])
    settle()


PASTE_IMAGE = """() => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array([137, 80, 78, 71])], "pasted.png", { type: "image/png" }));
    const paste = new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true });
    document.getElementById("input").dispatchEvent(paste);
}"""


def log_in(page: Page, token: str = "test-code") -> None:
    page.goto("/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("body[data-ready]")).to_be_attached()


def ask(page: Page, text: str, model: str | None = None) -> None:
    if model:
        page.locator("#model").select_option(model)
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")


def last_answer(page: Page):
    return page.locator(".message.assistant").last


def test_log_in_by_form_chat_and_log_out(page, keys):
    page.goto("/login")
    expect(page.get_by_role("heading", name="chat2api")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "login.png")
    page.get_by_label("Token").fill("wrong-code")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That token was not accepted. Check it and try again.")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_label("Token")).to_have_value("")  # not echoed back

    log_in(page)
    expect(page.locator("#model option")).to_have_count(4)
    box = page.get_by_label("Message")
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")  # Shift+Enter is a new line, not a send
    ask(page, "Say hello", model="fake-model")
    expect(last_answer(page).locator(".answer-body")).to_have_text("Hello from the fake upstream, one word at a time.")
    expect(page.locator("#conversations li")).to_have_count(1)
    expect(page.locator("#conversations li")).to_contain_text("Say hello")
    expect(page.locator("#regenerate")).to_be_visible()

    page.evaluate(PASTE_IMAGE)
    expect(page.locator("#attachments img")).to_have_count(1)
    page.get_by_role("button", name="Remove image").click()
    expect(page.locator("#attachments img")).to_have_count(0)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))


def test_log_in_by_link_switch_model_markdown_phone_and_dark_mode(page, keys, fake_openai, page_gateway):
    response = page.goto("/?token=test-code")
    assert response.request.redirected_from.url.endswith("/?token=test-code")
    assert response.request.redirected_from.response().status == 302
    assert page.url == page_gateway.url + "/"
    expect(page.locator("body[data-ready]")).to_be_attached()
    ask(page, "Show me an example", model="rich-model")
    answer = last_answer(page)
    expect(answer.locator("pre code.hljs")).to_contain_text("def greet(name: str) -> str:")
    expect(answer.locator("pre .hljs-keyword").first).to_have_text("def")  # highlighted
    expect(answer.locator("strong")).to_have_text("a short example")
    expect(answer.locator("pre button.copy")).to_be_visible()
    reasoning = answer.locator("details.reasoning")
    expect(reasoning).to_be_visible()
    reasoning.locator("summary").click()
    expect(reasoning).to_contain_text("A list and some Python will do.")
    assert fake_openai.requests[-1]["model"] == "rich-model"
    page.screenshot(path=ARTIFACTS / "chat.png")

    picture = answer.locator("img[alt='a generated picture']")
    expect(picture).to_be_visible()
    assert picture.evaluate("img => img.complete && img.naturalWidth") == 96

    page.locator("#file").set_input_files([{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}])
    expect(page.locator("#attachments img")).to_have_count(1)
    ask(page, "What is in this picture?", model="fake-model")
    expect(last_answer(page).locator(".answer-body")).to_have_text("Hello from the fake upstream, one word at a time.")
    expect(page.locator(".message.user img.attachment")).to_have_count(1)
    expect(page.locator("#attachments img")).to_have_count(0)
    sent = fake_openai.requests[-1]
    assert sent["model"] == "fake-model"
    assert sent["messages"][-1]["content"] == [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
    ]

    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 390, "height": 800})  # a phone
    expect(page.locator("#sidebar")).not_to_be_in_viewport()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(23, 25, 29)"  # dark palette
    page.wait_for_timeout(250)  # the sidebar's slide-out transition
    page.screenshot(path=ARTIFACTS / "chat-phone-dark.png")
    page.locator("#menu").click()
    expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)
    page.wait_for_timeout(250)
    page.screenshot(path=ARTIFACTS / "chat-phone-menu.png")

    page.go_back()
    assert "token=" not in page.url


def test_stop_cancels_the_upstream_request_and_errors_are_readable(page, keys, fake_openai):
    log_in(page)
    ask(page, "Tell me a long story", model="long-model")
    expect(last_answer(page)).to_contain_text("word3")
    page.get_by_role("button", name="Stop").click()
    wait_for(lambda: fake_openai.cancelled["sk-long-page"] == 1)
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(last_answer(page).locator(".status")).to_have_text("Stopped")
    assert "word119" not in last_answer(page).inner_text()
    wait_for(lambda: Conversation.objects.filter(messages__1__stopped=True).exists())

    page.get_by_role("button", name="+ New chat").click()
    ask(page, "hi", model="limited-model")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Rate limited")
    expect(alert).to_contain_text("retry in")


def test_no_upstream_secret_reaches_the_browser(page, keys, fake_chatgpt, fake_openai):
    chatgpt_account(POOL_ACCESS_TOKEN, refresh_token=REFRESH_TOKEN, account_id="acct-secret")
    settle()
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    log_in(page)
    ask(page, "Say hello", model="fake-model")
    expect(last_answer(page).locator(".answer-body")).to_contain_text("Hello from the fake upstream")
    ask(page, "Say hello", model="gpt-4o")  # the ChatGPT account answers
    expect(last_answer(page).locator(".answer-body")).to_contain_text("Hello from the fake ChatGPT")
    page.reload()
    expect(page.locator("#conversations li")).to_have_count(1)
    page.locator("#conversations .conv-title").click()
    expect(page.locator(".message.assistant")).to_have_count(2)
    assert fake_openai.calls[API_KEY] == 1
    received = [_body(r) for r in responses]
    seen = "\n".join([*received, page.content(), *(f"{c['name']}={c['value']}" for c in page.context.cookies())])
    for secret in (API_KEY, REFRESH_TOKEN, POOL_ACCESS_TOKEN, POOL_ACCESS_TOKEN.split(".")[1]):
        assert secret not in seen
        assert secret[6:-6] not in seen  # not even its middle
    assert len(received) > 8


def test_own_token_is_never_echoed(page, keys):
    own = access_token("ok-SECRETownTokenR7u2Pc")
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    log_in(page, own)
    ask(page, "Say hello", model="gpt-4o")
    expect(last_answer(page).locator(".answer-body")).to_contain_text("Hello from the fake ChatGPT")
    seen = "\n".join([*map(_body, responses), page.content(), *(c["value"] for c in page.context.cookies())])
    assert own not in seen and own.split(".")[1] not in seen


def _body(response: Response) -> str:
    if "/static/" in response.url:  # committed files: no secret can be in them
        return response.url
    try:
        return response.url + "\n" + str(response.headers) + "\n" + response.text()
    except Exception:  # a redirect or an aborted stream has no body to read
        return response.url + "\n" + str(response.headers)


def test_answers_are_sanitized_and_questions_shown_as_text(page, keys):
    log_in(page)
    ask(page, "<b>not bold</b>", model="fake-model")
    expect(last_answer(page).locator(".answer-body")).to_contain_text("Hello from the fake upstream")
    evil = '**bold** <img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    evil += " [link](javascript:window.pwned=3)"
    wait_for(lambda: len(Conversation.objects.get().messages) == 2)  # the answer is stored once the stream ends
    conversation = Conversation.objects.get()
    conversation.messages[1]["content"] = evil
    conversation.save()
    page.reload()
    page.locator("#conversations .conv-title").click()
    answer = last_answer(page)
    expect(answer.locator("strong")).to_have_text("bold")
    expect(page.locator(".message.user")).to_have_text("<b>not bold</b>")
    assert answer.locator("[onerror], script").count() == 0
    assert answer.locator("a").get_attribute("href") is None
    answer.locator("a").click()
    assert page.evaluate("window.pwned") is None
