"""Every error is the OpenAI shape with the right status; API_PREFIX and CORS behave as documented."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import openai_key
from tests.gateway import Gateway, settle
from tests.spec import assert_valid

pytestmark = pytest.mark.django_db(transaction=True)
AUTH = {"Authorization": "Bearer test-code"}
GOOD = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def post(gateway, body, headers=AUTH, path="/v1/chat/completions") -> httpx.Response:
    kwargs = {"content": body} if isinstance(body, bytes | str) else {"json": body}
    return httpx.post(gateway.url + path, headers=headers, timeout=30, **kwargs)


def assert_error(response: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert_valid("ErrorResponse", body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    if code:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "fake-model"}, "messages"),
        ({"model": "fake-model", "messages": []}, "messages"),
        ({"model": "fake-model", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": "fake-model", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({**GOOD, "stream": "yes"}, "stream"),
        ({**GOOD, "stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_bad_requests_are_400_naming_the_param(gateway, body, param):
    assert_error(post(gateway, body), 400, param)


def test_missing_key_is_401(gateway):
    error = assert_error(post(gateway, GOOD, headers={}), 401, code="invalid_api_key")
    assert "API key" in error["message"]


def test_unknown_model_is_404(gateway, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-ok-1")
    settle()
    assert_error(post(gateway, {**GOOD, "model": "no-such-model"}), 404, "model", "model_not_found")


def test_no_credential_is_503(gateway):
    settle()
    error = assert_error(post(gateway, {**GOOD, "model": "gpt-4o"}), 503, code="no_credential")
    assert "gpt-4o" in error["message"]


def test_body_over_limit_is_413(gateway):
    huge = b'{"model": "fake-model", "messages": [{"role": "user", "content": "' + b"x" * (21 * 1024 * 1024) + b'"}]}'
    assert_error(post(gateway, huge), 413, code="request_too_large")


def test_wrong_method_is_405(gateway):
    response = httpx.get(gateway.url + "/v1/chat/completions", headers=AUTH)
    assert_error(response, 405)


def test_cors_preflight_echoes_requested_headers(gateway):
    requested = "authorization, content-type, x-stainless-os, x-stainless-lang"
    response = httpx.options(
        gateway.url + "/v1/chat/completions",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": requested,
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Headers"] == requested
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_secret_never_in_error(gateway, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-401-very-secret-key-123456")
    settle()
    response = post(gateway, GOOD)
    assert response.status_code == 502
    assert "sk-401-very-secret-key-123456" not in response.text
    assert "sk-401-very-secret-key-123456" not in gateway.logs()


@pytest.fixture(scope="module")
def prefixed(gateway_env):
    server = Gateway({**gateway_env, "API_PREFIX": "secret-prefix"}).start()
    yield server
    server.stop()


def test_api_prefix_serves_only_under_prefix(prefixed, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-ok-1")
    settle()
    ok = post(prefixed, GOOD, path="/secret-prefix/v1/chat/completions")
    assert ok.status_code == 200, ok.text
    assert httpx.get(prefixed.url + "/secret-prefix/v1/models", headers=AUTH).status_code == 200
    assert post(prefixed, GOOD).status_code == 404
    assert httpx.get(prefixed.url + "/secret-prefix/tokens").status_code == 302
