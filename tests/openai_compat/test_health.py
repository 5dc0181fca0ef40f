"""Outlier detection through a real gateway with its state in Redis: prompt-caused failures take no credential out; a
failing one goes. (With the state in process memory: `tests/middle/test_health.py`.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import redis

from tests import sdk
from tests.cluster import redis_namespace
from tests.factories import openai_key
from tests.gateway import Gateway, settle
from tokens.models import Credential, Status
from tokens.services import clear_cooldown

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def node(gateway_env: dict[str, str]) -> Iterator[tuple[Gateway, redis.Redis, str]]:
    """A gateway, a client of its Redis and the key prefix of its pool state."""
    with redis_namespace() as (redis_env, client):
        gateway = Gateway({**gateway_env, **redis_env}).start()
        yield gateway, client, f"{redis_env['REDIS_KEY_PREFIX']}:{{pool}}:"
        gateway.stop()


def ask(gateway: Gateway, prompt: str, stream: bool) -> bool:
    """One chat request through the SDK; whether it got the whole answer."""
    client = sdk.client(gateway.url)
    messages = [{"role": "user", "content": prompt}]
    try:
        reply = client.chat.completions.create(model="fake-model", messages=messages, stream=stream)
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
        else:
            text = reply.choices[0].message.content or ""
    except openai.APIError:
        return False
    return text.startswith("Hello from the fake upstream")


def test_one_time_prompt_failures_take_no_healthy_credential_out(node, fake_openai):
    gateway, _, _ = node
    creds = [openai_key(fake_openai.url + "/v1", f"sk-ok-health-{side}") for side in "ab"]
    settle()

    def one(i: int) -> bool:
        prompt = f"Say hello fail-once-{uuid.uuid4().hex}" if i % 2 else "Say hello"
        return ask(gateway, prompt, stream=i % 4 < 2)

    with ThreadPoolExecutor(8) as pool:
        answered = sum(pool.map(one, range(200)))
    assert answered >= 198
    assert len(fake_openai.failed_once) == 100  # every other prompt failed once, on one credential or the other
    assert {Credential.objects.get(pk=c.pk).status for c in creds} == {Status.ACTIVE}


def assert_ejected(fake_openai, bad: Credential, carriers: list[Credential]) -> None:
    """After 60 requests: the always-failing credential was tried only until it stood out, then ejected."""
    assert 5 <= fake_openai.calls["sk-500-outlier"] <= 10  # OUTLIER_CONSECUTIVE_FAILURES, then out
    assert fake_openai.calls["sk-ok-carrier-0"] + fake_openai.calls["sk-ok-carrier-1"] == 60
    bad.refresh_from_db()
    assert bad.status == Status.COOLING and "as an outlier" in bad.last_error
    assert "Internal upstream failure" in bad.last_error
    assert {Credential.objects.get(pk=c.pk).status for c in carriers} == {Status.ACTIVE}


def test_an_always_failing_credential_is_out_within_ten_requests(node, fake_openai):
    gateway, client, prefix = node
    bad = openai_key(fake_openai.url + "/v1", "sk-500-outlier")
    carriers = [openai_key(fake_openai.url + "/v1", f"sk-ok-carrier-{i}") for i in range(2)]
    settle()
    assert all(ask(gateway, "Say hello", stream=i % 2 == 0) for i in range(60))
    assert_ejected(fake_openai, bad, carriers)
    assert float(client.hget(f"{prefix}eject:{bad.pk}", "until")) > 0  # in the shared state, for every node

    clear_cooldown(Credential.objects.filter(pk=bad.pk))  # the admin's "Clear cooldown" ends the ejection
    settle()
    tried = fake_openai.calls["sk-500-outlier"]
    for _ in range(30):  # random picks: it is picked again within a few requests (missing it 30 times: 5e-6)
        assert ask(gateway, "Say hello again", stream=False)
        if fake_openai.calls["sk-500-outlier"] > tried:
            break
    assert fake_openai.calls["sk-500-outlier"] == tried + 1  # back in service (and out again at its next failure)
