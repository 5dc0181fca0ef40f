"""A client may leave at any moment; its credential slot always goes back and nothing goes on upstream.

Every test runs against a real gateway under daphne and uvicorn, with the pool state in process memory and
in Redis; a credential with a concurrency limit of 1 shows a leaked slot as a refusal of the next request.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from tests import sdk
from tests.cluster import redis_namespace
from tests.factories import openai_key
from tests.fakes.openai_server import ANSWER
from tests.gateway import Gateway, eventually, settle
from tokens.models import Credential

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
HEADERS = {"Authorization": "Bearer test-code"}


class Node:
    """A gateway and, in Redis mode, a view of the leases it holds there."""

    def __init__(self, gateway: Gateway, client: redis.Redis | None, prefix: str) -> None:
        self.gateway, self.redis, self.prefix = gateway, client, prefix

    def leases(self) -> int:
        """Live leases in Redis; in memory mode the next request's success is what shows them free."""
        if self.redis is None:
            return 0
        keys = self.redis.scan_iter(f"{self.prefix}:{{pool}}:leases:*")
        return sum(self.redis.zcount(key, f"({time.time()}", "+inf") for key in keys)


@pytest.fixture(scope="module", params=["daphne-memory", "uvicorn-memory", "daphne-redis", "uvicorn-redis"])
def node(request: pytest.FixtureRequest, gateway_env: dict[str, str]) -> Iterator[Node]:
    server, mode = request.param.split("-")
    env = {**gateway_env, "POOL_WAIT_SECONDS": "3", "KEEPALIVE_SECONDS": "0.3", "RANDOM_TOKEN": "false"}
    if mode == "memory":
        gateway = Gateway(env, server=server).start()
        yield Node(gateway, None, "")
        gateway.stop()
        return
    with redis_namespace() as (redis_env, client):
        gateway = Gateway({**env, **redis_env}, server=server).start()
        yield Node(gateway, client, redis_env["REDIS_KEY_PREFIX"])
        gateway.stop()


def limited(fake_openai, key: str, max_concurrency: int = 1) -> Credential:
    cred = openai_key(fake_openai.url + "/v1", key)
    Credential.objects.filter(pk=cred.pk).update(max_concurrency=max_concurrency)
    settle()
    return cred


def hang_up_after(node: Node, seconds: float, body: dict = BODY) -> None:
    """Send a whole request on a raw socket and close the connection `seconds` later, reading nothing."""
    data = json.dumps(body).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer test-code\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", node.gateway.port)) as sock:
        sock.sendall(head.encode() + data)
        time.sleep(seconds)


def stream(node: Node) -> httpx.Response:
    return httpx.post(node.gateway.url + "/v1/chat/completions", json=BODY, headers=HEADERS, timeout=30)


def assert_all_released(node: Node) -> None:
    assert eventually(lambda: node.leases() == 0), "a slot stayed leased in Redis"
    reply = stream(node)  # with a slot still held, this waits POOL_WAIT_SECONDS and is refused with 429
    assert reply.status_code == 200 and reply.text.endswith("data: [DONE]\n\n"), reply.text[:300]
    assert eventually(lambda: node.leases() == 0)  # given back as the response closes, just after its last byte
    assert "never retrieved" not in node.gateway.logs()


def test_hang_ups_before_the_headers_release_their_slots(node, fake_openai):
    limited(fake_openai, "sk-late-ok-early")  # 1 s before the upstream's first byte
    with ThreadPoolExecutor(12) as clients:  # one holds the slot, the others wait for it; all leave
        list(clients.map(lambda i: hang_up_after(node, 0.0025 * i), range(12)))
    assert_all_released(node)


def test_hang_ups_around_the_first_byte_release_their_slots(node, fake_openai):
    limited(fake_openai, "sk-slow-first-byte")  # the first chunk at once, then one every 50 ms
    with ThreadPoolExecutor(8) as clients:  # the view returns, Django starts the body, the first chunk goes out
        list(clients.map(lambda i: hang_up_after(node, 0.001 * (i % 30)), range(60)))
    assert_all_released(node)


def test_an_abandoned_request_stops_picking_credentials(node, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-late-500-a")  # each fails after 1 s: a live request would go on
    openai_key(fake_openai.url + "/v1", "sk-late-500-b")  # to the other credential
    settle()
    with ThreadPoolExecutor(4) as clients:
        list(clients.map(lambda _: hang_up_after(node, 0.03), range(4)))
    time.sleep(1.5)  # past the first failures: a request still running would have tried its second credential
    mine = fake_openai.calls["sk-late-500-a"] + fake_openai.calls["sk-late-500-b"]  # a late hang-up of the test
    assert mine <= 4, fake_openai.order  # before may still reach the fake under load
    assert "never retrieved" not in node.gateway.logs()


def test_hang_up_during_keepalive_releases_the_slot(node, fake_openai):
    limited(fake_openai, "sk-late-ok-keepalive")
    with httpx.stream("POST", node.gateway.url + "/v1/chat/completions", json=BODY, headers=HEADERS) as reply:
        chunks = reply.iter_bytes()
        assert next(chunks).startswith(b": keep-alive")
    assert_all_released(node)


def test_hang_up_mid_stream_releases_the_slot_and_the_upstream(node, fake_openai):
    limited(fake_openai, "sk-slow-mid")  # a word every 50 ms: the client leaves after the first one
    with httpx.stream("POST", node.gateway.url + "/v1/chat/completions", json=BODY, headers=HEADERS) as reply:
        chunks = reply.iter_bytes()
        assert next(chunks).startswith(b"data: ")
    assert eventually(lambda: fake_openai.cancelled["sk-slow-mid"] == 1)
    assert_all_released(node)


def test_non_stream_fails_over_after_a_drop_mid_answer(node, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-drop-whole")  # drops the connection after three words
    openai_key(fake_openai.url + "/v1", "sk-ok-whole")
    settle()
    client = sdk.client(node.gateway.url)
    for _ in range(2):  # whichever credential the rotation tries first
        reply = client.chat.completions.create(model="fake-model", messages=BODY["messages"])
        assert reply.choices[0].message.content == ANSWER
    assert fake_openai.calls["sk-drop-whole"] >= 1
    assert node.leases() == 0
