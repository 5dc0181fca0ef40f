"""`POST /v1/chat/completions` in process: answers whole and streamed, failover before the first byte, a failure
after it, keep-alive comments while a start waits, and a client that leaves at any of those moments."""

from __future__ import annotations

import asyncio

import httpx
import openai
import orjson
import pytest
from django.utils import timezone

from tests.factories import chatgpt_account, openai_key
from tests.fakes.openai_server import ANSWER
from tests.gateway import eventually
from tests.middle.client import call, loaded, post, released, streamed_text
from tests.spec import assert_valid, assert_valid_sse, sse_data
from tokens.models import Credential, Status

CHAT = "/v1/chat/completions"
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**BODY, "stream": True}


def key(fake_openai, api_key: str, max_concurrency: int = 0) -> Credential:
    return openai_key(fake_openai.url + "/v1", api_key, max_concurrency=max_concurrency)


@pytest.fixture
def keepalive(settings) -> None:
    """Keep-alive comments every 20 ms (5 s by default: a start that fails sooner keeps its status)."""
    settings.KEEPALIVE_SECONDS = 0.02


def chunks(raw: bytes) -> list[dict]:
    return [orjson.loads(data) for data in sse_data(raw.decode()) if data != "[DONE]"]


def read_by_the_sdk(raw: bytes) -> str:
    """The text the openai SDK makes of a streamed body (these very bytes, handed to it as its server's reply)."""
    reply = httpx.Response(200, content=raw, headers={"Content-Type": "text/event-stream"})
    transport = httpx.MockTransport(lambda request: reply)
    sdk = openai.OpenAI(api_key="test-code", http_client=httpx.Client(transport=transport), max_retries=0)
    stream = sdk.chat.completions.create(**STREAM)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_a_whole_answer(run, fake_openai):
    key(fake_openai, "sk-ok-whole")

    async def go():
        await loaded()
        return await call(CHAT, BODY)

    reply, raw = run(go())
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    body = orjson.loads(raw)
    assert_valid("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["content"] == ANSWER and body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] > 0 and reply.headers["x-request-id"]


def test_a_streamed_answer_with_usage(run, fake_openai):
    key(fake_openai, "sk-ok-stream")

    async def go():
        await loaded()
        return await call(CHAT, {**STREAM, "stream_options": {"include_usage": True}})

    reply, raw = run(go())
    assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream"
    assert reply.headers["cache-control"] == "no-cache" and reply.headers["x-accel-buffering"] == "no"
    assert_valid_sse(raw.decode())
    assert raw.endswith(b"data: [DONE]\n\n") and streamed_text(raw) == ANSWER
    *answer, finish, usage = chunks(raw)
    assert answer[0]["choices"][0]["delta"]["role"] == "assistant"
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0


def test_a_failure_before_the_first_byte_fails_over(run, fake_openai):
    first, second = key(fake_openai, "sk-ok-first"), key(fake_openai, "sk-ok-second")
    prompt = {**STREAM, "messages": [{"role": "user", "content": "fail-once-middle"}]}  # whoever gets it first: 500

    async def go():
        await loaded()
        return await call(CHAT, prompt)

    reply, raw = run(go())
    assert reply.status == 200 and streamed_text(raw) == ANSWER and raw.endswith(b"data: [DONE]\n\n")
    assert fake_openai.calls[first.api_key] == fake_openai.calls[second.api_key] == 1


def test_a_failure_mid_stream_is_an_error_event(run, fake_openai):
    cred = key(fake_openai, "sk-drop-middle")  # drops the connection after three words

    async def go():
        await loaded()
        reply, raw = await call(CHAT, STREAM)
        return reply, raw, await released(cred)

    reply, raw, free = run(go())
    assert reply.status == 200 and free
    *answer, error = list(sse_data(raw.decode()))
    assert "".join(orjson.loads(c)["choices"][0]["delta"].get("content") or "" for c in answer).startswith("Hello")
    assert orjson.loads(error)["error"]["message"].startswith("The upstream failed mid-answer")
    assert b"[DONE]" not in raw


def test_keepalive_comments_while_the_start_waits_for_a_slot(run, keepalive, fake_openai):
    cred = key(fake_openai, "sk-ok-single", max_concurrency=1)

    async def go():
        await loaded()
        holder = post(CHAT, STREAM)
        await anext(holder.chunks())  # the slot is taken; unread, the rest of the answer waits
        waiting = await post(CHAT, STREAM).start()  # committed to a stream after KEEPALIVE_SECONDS
        parts = waiting.chunks()
        comments = [await anext(parts), await anext(parts)]
        await holder.read()  # the holder's answer ends: its slot goes to the waiting one
        return waiting, comments, b"".join([part async for part in parts]), await released(cred)

    waiting, comments, rest, free = run(go())
    assert waiting.status == 200 and comments == [b": keep-alive\n\n"] * 2
    assert_valid_sse(rest.decode())
    assert streamed_text(rest) == ANSWER and free
    assert read_by_the_sdk(b"".join(comments) + rest) == ANSWER


def test_a_start_that_fails_after_keepalive_is_an_error_event(run, keepalive, settings, fake_openai):
    settings.POOL_WAIT_SECONDS = 0.1
    cred = key(fake_openai, "sk-ok-busy", max_concurrency=1)

    async def go():
        await loaded()
        holder = post(CHAT, STREAM)
        await anext(holder.chunks())
        waiting = await post(CHAT, STREAM).start()
        body = await waiting.read()  # the slot stays held past POOL_WAIT_SECONDS
        await holder.read()
        return waiting, body, await released(cred)

    waiting, body, free = run(go())
    assert waiting.status == 200 and body.startswith(b": keep-alive\n\n") and free
    [error] = list(sse_data(body.decode()))
    assert orjson.loads(error)["error"]["code"] == "rate_limit_exceeded"


def test_failover_behind_keepalive_comments(run, keepalive, fake_openai):
    cred = key(fake_openai, "sk-ok-after", max_concurrency=1)
    failing = key(fake_openai, "sk-500-meanwhile")  # the one free credential, tried while the other is busy

    async def go():
        await loaded()
        holder = post(CHAT, STREAM)
        await anext(holder.chunks())  # on the one that answers, whichever it tried first
        tried = fake_openai.calls[failing.api_key]
        waiting = post(CHAT, STREAM)
        parts = waiting.chunks()
        comment = await anext(parts)
        await holder.read()
        rest = b"".join([part async for part in parts])
        return waiting, comment, rest, fake_openai.calls[failing.api_key] - tried, await released(cred)

    waiting, comment, rest, failed, free = run(go())
    assert waiting.status == 200 and comment == b": keep-alive\n\n" and free
    assert_valid_sse(rest.decode())
    assert streamed_text(rest) == ANSWER and failed == 1


def test_a_start_that_fails_before_keepalive_keeps_its_status(run, fake_openai):
    key(fake_openai, "sk-500-fast")

    async def go():
        await loaded()
        return await call(CHAT, STREAM)

    reply, raw = run(go())
    assert reply.status == 502 and reply.headers["content-type"] == "application/json"
    assert_valid("ErrorResponse", orjson.loads(raw))


@pytest.mark.parametrize("moment", ["before the headers", "during keep-alive"])
def test_a_client_leaving_while_the_start_waits_gives_nothing_back_held(run, settings, fake_openai, moment):
    if moment == "during keep-alive":
        settings.KEEPALIVE_SECONDS = 0.02
    cred = key(fake_openai, "sk-ok-leaving", max_concurrency=1)

    async def go():
        await loaded()
        holder = post(CHAT, STREAM)
        await anext(holder.chunks())
        waiting = post(CHAT, STREAM)
        if moment == "during keep-alive":
            assert await anext(waiting.chunks()) == b": keep-alive\n\n"
        else:
            await asyncio.sleep(0.05)  # in the pool's wait for the slot (nothing outside shows it)
        await waiting.leave()
        await holder.read()
        free = await released(cred)
        reply, raw = await call(CHAT, STREAM)  # a slot still held would make this wait, then refuse
        return free, reply, raw

    free, reply, raw = run(go())
    assert free and reply.status == 200 and raw.endswith(b"data: [DONE]\n\n")
    assert fake_openai.calls[cred.api_key] == 2


def test_a_client_leaving_mid_stream_releases_the_slot_and_the_upstream(run, fake_openai):
    cred = key(fake_openai, "sk-slow-leaving", max_concurrency=1)  # a word every 50 ms

    async def go():
        await loaded()
        reply = post(CHAT, STREAM)
        parts = reply.chunks()
        while not (await anext(parts)).startswith(b"data: "):  # keep-alive until the first word, 50 ms on
            pass
        await reply.leave()
        return await released(cred)

    assert run(go())
    assert eventually(lambda: fake_openai.cancelled[cred.api_key] == 1)


def test_an_account_being_refreshed_still_serves(run, fake_chatgpt):
    """A refresh in progress elsewhere (the scheduled pass, another node) takes no account out of the pool: its
    AccessToken is still good, so it answers meanwhile."""
    account = chatgpt_account("at-ok-refreshing", refresh_token="rt-ok-refreshing")
    Credential.objects.filter(pk=account.pk).update(status=Status.REFRESHING, refresh_claimed_at=timezone.now())

    async def go():
        await loaded()
        return await call(CHAT, {**BODY, "model": "gpt-4o"})

    reply, raw = run(go())
    assert reply.status == 200, raw
    assert orjson.loads(raw)["choices"][0]["message"]["content"]
