"""A stream still being prepared is kept alive with SSE comments; failover still works behind them."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.factories import openai_key
from tests.gateway import Gateway, settle
from tests.spec import assert_valid_sse

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture(scope="module")
def patient(gateway_env):
    server = Gateway({**gateway_env, "KEEPALIVE_SECONDS": "0.2"}).start()
    yield server
    server.stop()


def post(gateway) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer test-code"}, timeout=30
    )


def test_keepalive_comments_then_the_answer(patient, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-late-500-a")
    openai_key(fake_openai.url + "/v1", "sk-late-ok-b")
    settle()
    for _ in range(2):  # whichever is tried first, the client gets the whole answer
        response = post(patient)
        assert response.status_code == 200
        assert response.text.startswith(": keep-alive\n\n")
        assert_valid_sse(response.text)
        assert "Hello from the fake upstream" in "".join(
            c.choices[0].delta.content or ""
            for c in openai.OpenAI(
                base_url=patient.url + "/v1", api_key="test-code", max_retries=0
            ).chat.completions.create(model="fake-model", messages=BODY["messages"], stream=True)
            if c.choices
        )


def test_failure_after_keepalive_is_an_error_event(patient, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-late-500-z")
    settle()
    response = post(patient)
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert events[0] == ": keep-alive"
    assert events[-1].startswith('data: {"error"') and "Internal upstream failure" in events[-1]


def test_fast_failure_keeps_its_status(gateway, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-500-fast")
    settle()
    assert post(gateway).status_code == 502
