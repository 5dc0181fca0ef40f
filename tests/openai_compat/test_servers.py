"""The core of the API under each server `serve` can run: uvicorn (the default, as every other API test runs it)
and daphne (`ASGI_SERVER=daphne`). Answers, streams, errors and a client leaving behave the same under both."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests import sdk
from tests.factories import openai_key
from tests.fakes.openai_server import ANSWER
from tests.gateway import Gateway, eventually, settle
from tokens.models import Credential

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "user", "content": "Say hello"}]
AUTH = {"Authorization": "Bearer test-code"}


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def server(request: pytest.FixtureRequest, gateway_env: dict[str, str]) -> Iterator[Gateway]:
    # a held slot refuses the next request after 1 s (a leaked one would be held until the lease ends)
    gateway = Gateway({**gateway_env, "POOL_WAIT_SECONDS": "1"}, server=request.param).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def upstream(fake_openai) -> Credential:
    cred = openai_key(fake_openai.url + "/v1", "sk-ok-servers", ["fake-model"])
    settle()
    return cred


def client(server: Gateway, api_key: str = "test-code") -> openai.OpenAI:
    return sdk.client(server.url, api_key)


def test_an_answer(server, upstream):
    completion = client(server).chat.completions.create(model="fake-model", messages=HELLO)
    assert completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0


def test_a_stream(server, upstream):
    chunks = list(client(server).chat.completions.create(model="fake-model", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    raw = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "fake-model", "messages": HELLO, "stream": True},
        headers=AUTH,
        timeout=30,
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["cache-control"] == "no-cache"
    assert raw.text.endswith("data: [DONE]\n\n")


def test_models(server, upstream):
    assert "fake-model" in {model.id for model in client(server).models.list().data}


def test_errors_in_the_openai_shape(server, upstream):
    with pytest.raises(openai.AuthenticationError) as refused:
        client(server, "wrong-key").models.list()
    assert refused.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as unknown:
        client(server).chat.completions.create(model="no-such-model", messages=HELLO)
    assert unknown.value.body["code"] == "model_not_found"
    reply = httpx.get(server.url + "/v1/no-such-route", headers=AUTH)
    assert reply.status_code == 404
    assert reply.json()["error"]["message"] == "Invalid URL (GET /v1/no-such-route)"


def test_a_client_leaving_a_stream_stops_the_upstream_and_frees_the_slot(server, fake_openai):
    cred = openai_key(fake_openai.url + "/v1", "sk-slow-servers", ["fake-model"])
    Credential.objects.filter(pk=cred.pk).update(max_concurrency=1)
    settle()
    body = {"model": "fake-model", "messages": HELLO, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, headers=AUTH) as reply:
        next(reply.iter_lines())  # the first frame: the rest comes a word every 50 ms
    assert eventually(lambda: fake_openai.cancelled["sk-slow-servers"] == 1), "the upstream went on"
    completion = client(server).chat.completions.create(model="fake-model", messages=HELLO)  # the one slot is free
    assert completion.choices[0].message.content == ANSWER
