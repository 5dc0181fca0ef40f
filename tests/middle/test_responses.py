"""`POST /v1/responses` in process, streamed from each path an answer can take: an `openai` key's chat answer
translated, a key whose server speaks `/responses` passed on, a `codex` account natively; and what it leaves
behind (the stored response, the usage counted)."""

from __future__ import annotations

import orjson
import pytest

from tests.factories import codex_account, openai_key
from tests.fakes import codex_server, openai_server
from tests.gateway import eventually
from tests.middle.client import Exchange, call, loaded, post, released
from tests.spec import assert_valid, assert_valid_responses_stream
from tokens.models import Usage
from tokens.pool import pool

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def translated(fake_openai, fake_codex):
    return openai_key(fake_openai.url + "/v1", "sk-ok-translated", ["fake-model"]), "fake-model", openai_server.ANSWER


def passed_on(fake_openai, fake_codex):
    cred = openai_key(fake_openai.url + "/v1", "sk-ok-passed", ["fake-model"], wire_api="responses")
    return cred, "fake-model", openai_server.ANSWER


def native(fake_openai, fake_codex):
    return codex_account(account_id="acc-text-middle"), "gpt-5.5", codex_server.ANSWER


@pytest.mark.parametrize("path", [translated, passed_on, native])
def test_a_stream_in_event_order_then_stored_and_counted(run, fake_openai, fake_codex, path):
    cred, model, answer = path(fake_openai, fake_codex)

    async def go():
        await loaded()
        reply, raw = await call("/v1/responses", {"model": model, "input": "Hi", "stream": True})
        await pool.flush_usage()
        events = assert_valid_responses_stream(raw)
        stored = Exchange("GET", f"/v1/responses/{events[-1]['response']['id']}")
        return reply, events, await stored.start(), await stored.read()

    reply, events, stored, body = run(go())
    assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream"
    types = [event["type"] for event in events if event["type"] != "codex.rate_limits"]
    assert list(dict.fromkeys(types)) == TEXT_EVENTS  # the deltas in one run, each other event once
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    response = events[-1]["response"]
    assert response["status"] == "completed" and response["output"][-1]["content"][0]["text"] == answer
    assert stored.status == 200 and orjson.loads(body)["output"] == response["output"]
    assert_valid("Response", orjson.loads(body))
    [usage] = Usage.objects.filter(credential=cred)
    assert usage.requests == 1 and usage.completion_tokens > 0


def test_a_client_leaving_mid_stream_releases_the_slot_and_the_upstream(run, fake_openai):
    cred = openai_key(fake_openai.url + "/v1", "sk-long-responses", ["fake-model"], max_concurrency=1)

    async def go():
        await loaded()
        reply = post("/v1/responses", {"model": "fake-model", "input": "Hi", "stream": True})
        parts = reply.chunks()
        while b"response.output_text.delta" not in await anext(parts):
            pass
        await reply.leave()
        return await released(cred)

    assert run(go())
    assert eventually(lambda: fake_openai.cancelled[cred.api_key] == 1)
