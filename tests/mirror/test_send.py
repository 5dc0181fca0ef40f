"""The page's endpoints over the real server: streamed answers through the one pipeline, kept in the
conversation; stop, regenerate, errors, own tokens and seed tokens."""

from __future__ import annotations

import orjson
import pytest
from django.utils import timezone

from mirror.models import Conversation
from tests.factories import openai_key
from tests.fakes.chatgpt_server import ANSWER as CHATGPT_ANSWER
from tests.fakes.oauth_server import access_token
from tests.fakes.openai_server import ANSWER
from tests.gateway import settle
from tests.mirror.helpers import log_in, seed_token, wait_for
from tests.spec import assert_valid_sse
from tokens.models import Credential, Status, Usage

pytestmark = pytest.mark.django_db(transaction=True)
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@pytest.fixture
def keys(fake_openai, page_gateway):
    base = fake_openai.url + "/v1"
    openai_key(base, "sk-ok-page", ["fake-model"])
    openai_key(base, "sk-long-page", ["long-model"])
    openai_key(base, "sk-429-page", ["limited-model"])
    settle()


def test_send_streams_openai_sse_and_keeps_the_answer(page_gateway, keys):
    client = log_in(page_gateway, "test-code")
    conversation = client.new_conversation()
    response = client.send_message(conversation, model="fake-model", content="Say hello")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert_valid_sse(response.text)
    assert response.text.endswith("data: [DONE]\n\n")

    kept = client.api("GET", f"conversations/{conversation}").json()
    assert kept["title"] == "Say hello"
    assert kept["messages"] == [
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": ANSWER, "reasoning": "", "stopped": False},
    ]
    listed = client.api("GET", "conversations").json()["conversations"]
    assert [c["id"] for c in listed] == [conversation]
    # the answer's usage, recorded for its credential (written in batches)
    wait_for(lambda: Usage.objects.filter(model="fake-model", completion_tokens__gt=0).exists())


def test_the_history_goes_upstream_and_regenerate_replaces_the_answer(page_gateway, keys, fake_openai):
    client = log_in(page_gateway, "test-code")
    conversation = client.new_conversation()
    client.send_message(conversation, model="fake-model", content="one")
    client.send_message(conversation, model="fake-model", content=[{"type": "text", "text": "two"}, image_part()])
    upstream = fake_openai.requests[-1]["messages"]
    assert [m["role"] for m in upstream] == ["user", "assistant", "user"]
    assert upstream[-1]["content"][1]["image_url"]["url"] == PNG

    assert client.send_message(conversation, regenerate=True).status_code == 200
    assert fake_openai.requests[-1]["messages"] == upstream  # the same question again
    kept = client.api("GET", f"conversations/{conversation}").json()["messages"]
    assert [m["role"] for m in kept] == ["user", "assistant", "user", "assistant"]


def image_part() -> dict:
    return {"type": "image_url", "image_url": {"url": PNG}}


def test_an_error_before_the_answer_is_json_and_keeps_the_question(page_gateway, keys):
    client = log_in(page_gateway, "test-code")
    conversation = client.new_conversation("limited-model")
    response = client.send_message(conversation, model="limited-model", content="hi")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    kept = client.api("GET", f"conversations/{conversation}").json()["messages"]
    assert kept == [{"role": "user", "content": "hi"}]  # Regenerate can try again

    not_an_image = [{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]
    bad = client.send_message(conversation, model="fake-model", content=not_an_image)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "content"


def test_stopping_closes_the_upstream_request_and_keeps_the_partial_answer(page_gateway, keys, fake_openai):
    client = log_in(page_gateway, "test-code")
    conversation = client.new_conversation("long-model")
    payload = {"model": "long-model", "content": "Tell me a long story"}
    headers = {"X-CSRFToken": client.csrf}
    with client.stream("POST", f"/chat/api/conversations/{conversation}/send", json=payload, headers=headers) as r:
        received = b""
        for chunk in r.iter_bytes():
            received += chunk
            if b"word3" in received:
                break
    wait_for(lambda: fake_openai.cancelled["sk-long-page"] == 1)
    assert fake_openai.calls["sk-long-page"] == 1

    def kept_answer() -> dict | None:
        messages = Conversation.objects.get(pk=conversation).messages
        return messages[-1] if messages[-1]["role"] == "assistant" else None

    wait_for(kept_answer)
    answer = kept_answer()
    assert answer["stopped"] is True
    assert answer["content"].startswith("word0 word1 word2 word3")
    assert "word119" not in answer["content"]


def test_csrf_header_is_required(page_gateway, keys):
    client = log_in(page_gateway, "test-code")
    refused = client.post("/chat/api/conversations", json={"model": "fake-model"})
    assert refused.status_code == 403
    assert client.new_conversation()


def test_models_are_those_the_login_may_use(page_gateway, keys):
    pool_models = log_in(page_gateway, "test-code").api("GET", "models").json()["models"]
    assert {"fake-model", "long-model", "limited-model"} <= set(pool_models)
    assert "gpt-4o" not in pool_models  # no ChatGPT account in the pool
    own = log_in(page_gateway, access_token("ok-own-user")).api("GET", "models").json()["models"]
    assert "gpt-4o" in own and "fake-model" not in own


def test_own_access_token_chats_with_it_not_the_pool(page_gateway, keys, fake_chatgpt, fake_openai):
    client = log_in(page_gateway, access_token("ok-own-user"))
    conversation = client.new_conversation("gpt-4o")
    response = client.send_message(conversation, model="gpt-4o", content="hi")
    assert response.status_code == 200, response.text
    assert "".join(_contents(response.text)) == CHATGPT_ANSWER
    assert not fake_openai.calls


def test_own_refresh_token_is_checked_at_login(page_gateway, fake_oauth):
    assert log_in(page_gateway, "rt-ok-own-0123456789abcdef0123456789abcdef")
    refused = log_in_refused(page_gateway, "rt-bad-own-0123456789abcdef0123456789abcdef")
    assert "not accepted" in refused


def log_in_refused(gateway, token: str) -> str:
    from tests.mirror.helpers import PageClient

    client = PageClient(base_url=gateway.url, follow_redirects=True)
    response = client.get("/", params={"token": token})
    assert response.url.path == "/login"
    return response.text


def test_conversations_belong_to_one_identity(page_gateway, keys):
    alice = log_in(page_gateway, "test-code")
    conversation = alice.new_conversation()
    seed_token("seed-bob-0123456789", label="bob")
    bob = log_in(page_gateway, "seed-bob-0123456789")
    assert bob.api("GET", "conversations").json()["conversations"] == []
    assert bob.api("GET", f"conversations/{conversation}").status_code == 404
    assert bob.api("DELETE", f"conversations/{conversation}").status_code == 404
    assert alice.api("GET", f"conversations/{conversation}").status_code == 200


def test_seed_token_chats_through_the_pool_until_revoked(page_gateway, keys, fake_openai):
    seed = seed_token("seed-alice-0123456789")
    client = log_in(page_gateway, "seed-alice-0123456789")
    conversation = client.new_conversation()
    assert "".join(_contents(client.send_message(conversation, model="fake-model", content="hi").text)) == ANSWER
    seed.refresh_from_db()
    assert seed.last_used_at is not None

    seed.revoked = True
    seed.save()
    response = client.api("GET", "conversations")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_logged_in"
    assert client.get("/").headers["location"] == "/login"


def test_seed_token_sticks_to_one_credential_then_moves_on(page_gateway, fake_openai):
    base = fake_openai.url + "/v1"
    keys = [openai_key(base, f"sk-ok-sticky-{i}", ["sticky-model"]) for i in range(3)]
    settle()
    seed_token("seed-sticky-0123456789")
    client = log_in(page_gateway, "seed-sticky-0123456789")
    conversation = client.new_conversation("sticky-model")
    for _ in range(6):
        client.send_message(conversation, model="sticky-model", content="hi")
    used = [k for k in keys if fake_openai.calls[k.api_key]]
    assert len(used) == 1

    Credential.objects.filter(pk=used[0].pk).update(status=Status.DISABLED, updated_at=timezone.now())
    settle()
    fake_openai.reset()
    for _ in range(4):
        client.send_message(conversation, model="sticky-model", content="hi")
    assert len([k for k in keys if fake_openai.calls[k.api_key]]) == 1


def _contents(sse: str) -> list[str]:
    chunks = [orjson.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: {")]
    return [c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices")]


def test_a_token_of_no_known_shape_is_refused_without_asking_anyone(page_gateway, fake_oauth):
    for junk in ("hello", "sk-proj-0123456789abcdef0123456789abcdef0123", "eyJnot.a.jwt"):
        assert "not accepted" in log_in_refused(page_gateway, junk)
    assert not fake_oauth.calls
