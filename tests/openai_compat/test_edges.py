"""Edges of the API: no answer that is not an OpenAI error, body limits before reading, own-token rules."""

from __future__ import annotations

import asyncio
import contextlib
import re
import select
import socket
from collections.abc import Iterator

import aiohttp
import httpx
import openai
import pytest

from tests import sdk
from tests.cluster import redis_namespace
from tests.factories import openai_key
from tests.gateway import Gateway, free_port, settle

pytestmark = pytest.mark.django_db(transaction=True)
AUTH = {"Authorization": "Bearer test-code"}
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
LIMIT = 1_000_000  # MAX_REQUEST_BYTES of the body-limit gateways
SERVERS = ("daphne", "uvicorn")


def error_of(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code:
        assert error["code"] == code
    return error


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest, gateway_env: dict[str, str]) -> Iterator[Gateway]:
    """Either ASGI server, with a small body limit and a trusted proxy (the tests speak as clients behind it)."""
    env = {**gateway_env, "MAX_REQUEST_BYTES": str(LIMIT), "TRUSTED_PROXIES": "127.0.0.1"}
    gateway = Gateway(env, server=request.param).start()
    yield gateway
    gateway.stop()


# --- JSON for every answer ------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nope"), ("POST", "/v1/chat/completion"), ("GET", "/v1/")])
def test_unknown_api_paths_are_json_404(server, method, path):
    for headers in (AUTH, {}):
        error = error_of(httpx.request(method, server.url + path, headers=headers), 404)
        assert error["message"] == f"Invalid URL ({method} {path})"


def test_every_api_answer_carries_a_request_id(server):
    ok = httpx.get(server.url + "/v1/models", headers=AUTH)
    refused = httpx.get(server.url + "/v1/models")
    assert ok.status_code == 200 and refused.status_code == 401
    ids = {ok.headers["x-request-id"], refused.headers["x-request-id"]}
    assert len(ids) == 2 and all(re.fullmatch(r"req_[0-9a-f]{32}", i) for i in ids)


@pytest.fixture(scope="module")
def redis_down(gateway_env: dict[str, str]) -> Iterator[Gateway]:
    gateway = Gateway({**gateway_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "REDIS_TIMEOUT": "1"})
    yield gateway.start()
    gateway.stop()


def test_redis_down_is_an_openai_503(redis_down, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-ok-redis-down")
    settle()
    for stream in (False, True):
        response = httpx.post(redis_down.url + "/v1/chat/completions", json={**BODY, "stream": stream}, headers=AUTH)
        error = error_of(response, 503, "service_unavailable")
        assert response.headers["x-request-id"] in error["message"]
        assert response.headers["retry-after"] == "1"
    assert fake_openai.calls == {}


@pytest.fixture(scope="module")
def redis_mode(gateway_env: dict[str, str]) -> Iterator[tuple[Gateway, dict[str, str], object]]:
    with redis_namespace() as (env, client):
        gateway = Gateway({**gateway_env, **env}).start()
        yield gateway, env, client
        gateway.stop()


def test_an_unexpected_fault_is_an_openai_500_logged_once(redis_mode, fake_openai):
    gateway, env, client = redis_mode
    cred = openai_key(fake_openai.url + "/v1", "sk-ok-fault")
    settle()
    assert httpx.post(gateway.url + "/v1/chat/completions", json=BODY, headers=AUTH, timeout=30).status_code == 200
    # Foreign data where the pool keeps a cooldown: Redis answers WRONGTYPE, which no code expects.
    client.set(f"{env['REDIS_KEY_PREFIX']}:{{pool}}:cool:{cred.id}", "not a hash")
    response = httpx.post(gateway.url + "/v1/chat/completions", json=BODY, headers=AUTH, timeout=30)
    error = error_of(response, 500)
    request_id = response.headers["x-request-id"]
    assert error["type"] == "server_error" and request_id in error["message"]
    assert "WRONGTYPE" not in response.text and "sk-ok-fault" not in response.text
    logs = gateway.logs()
    faults = [line for line in logs.splitlines() if request_id in line and " ERROR " in line]  # every line has the id
    assert len(faults) == 1 and "WRONGTYPE" in logs and "Internal Server Error" not in logs


@pytest.mark.cluster  # 300 requests at once: run on its own, not beside other workers
@pytest.mark.parametrize("server_name", SERVERS)
def test_a_burst_in_redis_mode_gets_no_5xx(gateway_env, fake_openai, server_name):
    openai_key(fake_openai.url + "/v1", "sk-ok-burst-1")
    openai_key(fake_openai.url + "/v1", "sk-ok-burst-2")
    with redis_namespace() as (env, _):
        gateway = Gateway({**gateway_env, **env, "REDIS_MAX_CONNECTIONS": "20"}, server=server_name).start()
        try:
            statuses = asyncio.run(burst(gateway.url, 300))
        finally:
            gateway.stop()
    assert statuses == {200: 300}, statuses


async def burst(url: str, n: int) -> dict[int, int]:
    """`n` requests at once, half of them streamed (aiohttp: a third of httpx's CPU per request, which on two cores
    shared with the gateway is most of the burst's time)."""
    connector = aiohttp.TCPConnector(limit=n)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, headers=AUTH, connector=connector, timeout=timeout) as client:

        async def one(i: int) -> int:
            stream = i % 2 == 0
            async with client.post("/v1/chat/completions", json={**BODY, "stream": stream}) as response:
                text = await response.text()
            assert not stream or text.endswith("data: [DONE]\n\n")
            return response.status

        statuses = await asyncio.gather(*(one(i) for i in range(n)))
    return {status: statuses.count(status) for status in set(statuses)}


# --- Body limits ----------------------------------------------------------------------------------
def raw_request(gateway: Gateway, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
    sock.sendall(head.encode())
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict]:
    """Read until the server closes; a close with body bytes still unread reaches us as a reset after the answer."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), httpx.Response(200, content=body).json()


def test_an_over_limit_declared_length_is_refused_before_the_body(server):
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-code\r\n"
        f"Content-Type: application/json\r\nContent-Length: {LIMIT + 1}\r\n\r\n"
    )
    with raw_request(server, head) as sock:  # not one byte of the body is sent
        status, body = read_response(sock)
    assert status == 413 and body["error"]["code"] == "request_too_large"


def test_a_chunked_body_stops_being_read_past_the_limit(server):
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-code\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    sent = 0
    with raw_request(server, head) as sock:
        # An endless body: a server that read it whole would never answer.
        while sent < 100 * LIMIT and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        status, body = read_response(sock)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    assert sent < 100 * LIMIT


def test_a_body_within_the_limit_is_served(server, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-ok-body")
    settle()
    padded = {**BODY, "messages": [{"role": "user", "content": "x" * (LIMIT - 1000)}]}
    response = httpx.post(server.url + "/v1/chat/completions", json=padded, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text


# --- A caller's own token -------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["hello", "sk-proj-" + "a" * 60, "eyJnot-a-jwt", "eyJa.bm90IGpzb24.c2ln", "x" * 39])
def test_a_key_that_is_no_token_is_401_without_an_outbound_call(server, fake_oauth, fake_chatgpt, key):
    api = sdk.client(server.url, key)
    with pytest.raises(openai.AuthenticationError) as err:
        api.chat.completions.create(model="gpt-4o", messages=BODY["messages"])
    assert err.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        api.models.list()
    assert fake_oauth.calls == {} and fake_chatgpt.requests == []


def test_own_tokens_that_look_like_tokens_are_used(server, fake_oauth):
    access_token = "eyJok-own.e30.sig"  # a JWT's shape: three parts, the payload decodes ({})
    models = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {access_token}"})
    assert models.status_code == 200 and models.json()["data"]
    refresh_token = "rt_" + "OwnRefreshToken" * 3
    models = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {refresh_token}"})
    assert models.status_code == 200 and fake_oauth.calls[refresh_token] == 1


def test_refused_refresh_tokens_lock_out_their_address(server, fake_oauth):
    bad = "rt-bad-" + "x" * 40  # a RefreshToken's shape, which the token endpoint refuses
    statuses = []
    while 429 not in statuses and len(statuses) < 15:
        response = post_as(server, bad, "203.0.113.7")
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5 and statuses[-1] == 429
    assert int(response.headers["retry-after"]) >= 1
    assert fake_oauth.calls[bad] == statuses.count(401)  # a locked-out attempt calls nobody
    assert post_as(server, bad, "203.0.113.8").status_code == 401  # another address is not locked


def post_as(gateway: Gateway, key: str, address: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": f"198.51.100.1, {address}"}
    return httpx.post(gateway.url + "/v1/chat/completions", json=BODY, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def no_own_tokens(gateway_env: dict[str, str]) -> Iterator[Gateway]:
    gateway = Gateway({**gateway_env, "ALLOW_OWN_TOKENS": "false"})
    yield gateway.start()
    gateway.stop()


def test_own_tokens_can_be_turned_off(no_own_tokens, fake_oauth, fake_chatgpt):
    for key in ("eyJok-own.e30.sig", "rt_" + "OwnRefreshToken" * 3):
        headers = {"Authorization": f"Bearer {key}"}
        error_of(httpx.get(no_own_tokens.url + "/v1/models", headers=headers), 401, "invalid_api_key")
        response = httpx.post(no_own_tokens.url + "/v1/chat/completions", json=BODY, headers=headers)
        error_of(response, 401, "invalid_api_key")
    assert httpx.get(no_own_tokens.url + "/v1/models", headers=AUTH).status_code == 200
    assert fake_oauth.calls == {} and fake_chatgpt.requests == []
