"""The Responses renderer on scripted answers: every event and every final object as the spec and the openai SDK
read them (validating strictly, as strict consumers do, and through the SDK's stream helper, which refuses events
out of order); items in the order clients rebuild them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from openai_compat.errors import APIError
from openai_compat.lifecycle import Starting
from openai_compat.responses.render import response_object, stream_events
from openai_compat.responses.request import ResponsesRequest
from openai_compat.route import Route
from openai_compat.schema import ChatRequest
from openai_compat.services import Answer
from openai_compat.upstreams.base import Delta, UpstreamError
from tests.spec import assert_valid, assert_valid_responses_stream
from tokens.pool import PooledCredential

MODEL = "gpt-test"
RESPONSE_ID = "resp_0123456789abcdef"
CHAT = ChatRequest(MODEL, [{"role": "user", "content": "hi"}], stream=True, include_usage=False, body={})
EVENT = TypeAdapter(ResponseStreamEvent)
USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 3},
}
Script = list[Delta | Exception]


def responses_request(**fields: Any) -> ResponsesRequest:
    body = {"model": MODEL, "input": "hi", **fields}
    return ResponsesRequest(
        model=MODEL,
        input=[{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        stream=bool(body.get("stream")),
        store=body.get("store", True),
        previous_response_id=body.get("previous_response_id"),
        body=body,
    )


async def upstream(script: Script) -> AsyncIterator[Delta]:
    for step in script:
        if isinstance(step, Exception):
            raise step
        yield step


async def ignore(response: dict[str, Any]) -> None:
    pass


def answer(script: Script) -> Answer:
    """An answer whose first delta is in hand, as the pipeline hands it over; `lease=None`, so closing it only
    records its use (in memory: the credential has no id)."""
    return Answer(PooledCredential(id=None, kind="openai"), script[:1], upstream(script[1:]), Route(MODEL))


class Run:
    """One rendered answer: the stream's events (checked against the spec and the SDK), what `finish` got."""

    def __init__(self, script: Script, request: ResponsesRequest | None = None, start: Exception | None = None):
        self.answer, self.finished = answer(script), []
        self.request = request or responses_request(stream=True)
        self.raw = asyncio.run(self._stream(start))
        self.events = assert_valid_responses_stream(self.raw)
        helper = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)  # `responses.stream()`'s
        for event in self.events:
            helper.handle_event(EVENT.validate_python(event, strict=True))
        self.types = [event["type"] for event in self.events]
        self.response = self.events[-1]["response"]
        assert_valid("Response", self.response)
        Response.model_validate(self.response, strict=True)

    async def finish(self, response: dict[str, Any]) -> None:
        self.finished.append(response)

    async def _stream(self, failure: Exception | None) -> bytes:
        starting = Starting(self._start(failure))
        try:
            frames = stream_events(starting, self.request, CHAT, RESPONSE_ID, self.finish)
            return b"".join([frame async for frame in frames])
        finally:
            await starting.aclose()

    async def _start(self, failure: Exception | None) -> Answer:
        if failure is not None:
            raise failure
        return self.answer

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]


def test_text_only():
    run = Run([Delta(content="Hel"), Delta(content="lo"), Delta(finish_reason="stop")])
    assert run.types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in run.events] == list(range(len(run.events)))
    assert run.raw.startswith(b"event: response.created\ndata: {")
    assert run.events[0]["response"]["status"] == "in_progress" and run.events[0]["response"]["output"] == []
    [message] = run.response["output"]
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["content"] == [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]
    assert run.response["id"] == RESPONSE_ID and run.response["status"] == "completed"
    assert run.response["completed_at"] and run.response["model"] == MODEL
    assert run.finished == [run.response]
    assert run.answer.closed and run.answer.usage["completion_tokens"] > 0  # estimated: the upstream gave none
    assert run.response["usage"]["output_tokens"] == run.answer.usage["completion_tokens"]


def test_reasoning_then_text():
    run = Run([Delta(reasoning="Let me "), Delta(reasoning="think."), Delta(content="Yes."), Delta(usage=USAGE)])
    reasoning, message = run.response["output"]
    assert reasoning["id"].startswith("rs_") and "encrypted_content" not in reasoning
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert message["content"][0]["text"] == "Yes."
    assert run.types.index("response.reasoning_summary_part.done") < run.types.index("response.content_part.added")
    [reasoning_done, _] = run.of("response.output_item.done")
    assert reasoning_done["item"] == reasoning
    assert run.response["usage"] == {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 18,
    }
    assert run.answer.usage == USAGE  # recorded per credential in chat form, as for chat


@pytest.mark.parametrize(
    "script",
    [
        [Delta(reasoning="hmm"), Delta(encrypted_reasoning="gAAA1"), Delta(content="ok")],
        [Delta(encrypted_reasoning="gAAA1"), Delta(content="ok")],  # an item of its own, with no summary
    ],
)
def test_reasoning_with_encrypted_content(script: Script):
    run = Run(script)
    reasoning, _ = run.response["output"]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"] == "gAAA1"
    assert run.of("response.output_item.done")[0]["item"] == reasoning  # Codex replays the item it was sent done


def test_encrypted_content_after_its_item_closed_reaches_the_final_object():
    script = [Delta(reasoning="a"), Delta(content="ok"), Delta(encrypted_reasoning="gAAA1")]
    response = asyncio.run(response_object(answer(script), responses_request(), CHAT, RESPONSE_ID, ignore))
    assert [item.get("encrypted_content") for item in response["output"]] == ["gAAA1", None]


def test_two_interleaved_parallel_calls():
    fragments = [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "type": "function", "function": {"name": "get_time", "arguments": '{"tz"'}},
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 1, "function": {"arguments": ':"UTC"}'}},
        {"index": 0, "function": {"arguments": '"Paris"}'}},
    ]
    run = Run([Delta(tool_calls=[part]) for part in fragments] + [Delta(finish_reason="tool_calls")])
    weather, time = run.response["output"]
    assert weather == {
        "type": "function_call",
        "id": weather["id"],
        "call_id": "call_a",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    assert weather["id"].startswith("fc_") and time["call_id"].startswith("call_") and time["call_id"] != "call_"
    assert (time["name"], time["arguments"]) == ("get_time", '{"tz":"UTC"}')
    assert run.response["status"] == "completed"
    assert [e["arguments"] for e in run.of("response.function_call_arguments.done")] == [
        weather["arguments"],
        time["arguments"],
    ]
    assert [e["name"] for e in run.of("response.function_call_arguments.done")] == ["get_weather", "get_time"]
    assert [e["item"]["arguments"] for e in run.of("response.output_item.added")] == ["", ""]


def test_text_then_a_call():
    call = {"index": 0, "id": "call_x", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    run = Run([Delta(content="Let me look."), Delta(tool_calls=[call]), Delta(finish_reason="tool_calls")])
    assert [item["type"] for item in run.response["output"]] == ["message", "function_call"]
    assert run.types.index("response.output_item.done") < run.types.index("response.function_call_arguments.delta")


def test_length_is_incomplete():
    run = Run([Delta(content="Once upon"), Delta(finish_reason="length")])
    assert run.types[-1] == "response.incomplete"
    assert run.response["status"] == "incomplete" and run.response["completed_at"] is None
    assert run.response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert run.response["output"][0]["status"] == "incomplete"
    assert run.finished == [run.response]


def test_content_filter_with_no_text():
    run = Run([Delta(finish_reason="content_filter")])
    assert run.types == ["response.created", "response.in_progress", "response.incomplete"]
    assert run.response["incomplete_details"] == {"reason": "content_filter"} and run.response["output"] == []


def test_upstream_failure_mid_answer():
    run = Run([Delta(content="Half an"), UpstreamError("connection reset")])
    assert run.types[-3:] == ["response.content_part.done", "response.output_item.done", "response.failed"]
    assert run.response["status"] == "failed" and run.response["output"][0]["status"] == "incomplete"
    assert run.response["error"]["code"] == "server_error"
    assert "connection reset" in run.response["error"]["message"]
    assert run.finished == [] and run.answer.closed and run.answer.failed


def test_a_fault_mid_answer_is_a_failed_response():
    run = Run([Delta(content="Half an"), RuntimeError("a bug")])
    assert run.response["error"]["code"] == "server_error" and "request ID req_" in run.response["error"]["message"]
    assert run.answer.closed


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (APIError(429, "Every credential is cooling down.", code="rate_limit_exceeded"), "rate_limit_exceeded"),
        (APIError(502, "The upstream failed after every retry."), "server_error"),
        (RuntimeError("a bug"), "server_error"),
    ],
)
def test_a_failed_start_is_created_then_failed(failure: Exception, code: str):
    run = Run([Delta(content="unused")], start=failure)
    assert run.types == ["response.created", "response.in_progress", "response.failed"]
    assert run.response["error"]["code"] == code and run.response["output"] == []
    assert run.finished == []


def test_keepalive_until_the_answer_starts(settings):
    settings.KEEPALIVE_SECONDS = 0.01

    async def go() -> list[bytes]:
        ready = asyncio.Event()

        async def start() -> Answer:
            await ready.wait()
            return answer([Delta(content="late")])

        starting = Starting(start())
        frames = []
        try:
            async for frame in stream_events(starting, responses_request(), CHAT, RESPONSE_ID, ignore):
                frames.append(frame)
                ready.set()  # after the first keep-alive
        finally:
            await starting.aclose()
        return frames

    frames = asyncio.run(go())
    assert frames[0] == b": keep-alive\n\n"
    events = assert_valid_responses_stream(b"".join(frames))
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "late"


def test_the_request_is_echoed():
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}, "strict": True}]
    request = responses_request(
        instructions="Be brief.",
        tools=tools,
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0.2,
        top_p=0.5,
        max_output_tokens=100,
        metadata={"k": "v"},
        reasoning={"effort": "low", "summary": "auto"},
        text={"verbosity": "low"},
        store=False,
        truncation="auto",
        user="u-1",
        previous_response_id="resp_earlier",
    )
    response = Run([Delta(content="ok")], request).response
    assert {k: response[k] for k in request.body if k not in ("model", "input")} == {
        **{k: v for k, v in request.body.items() if k not in ("model", "input", "text")},
        "text": {"format": {"type": "text"}, "verbosity": "low"},
    }


def test_defaults_of_a_bare_request():
    response = Run([Delta(content="ok")]).response
    assert (response["tools"], response["tool_choice"], response["parallel_tool_calls"]) == ([], "auto", True)
    assert (response["temperature"], response["top_p"], response["truncation"]) == (1.0, 1.0, "disabled")
    assert (response["metadata"], response["store"], response["service_tier"]) == ({}, True, "default")
    assert response["reasoning"] == {"effort": None, "summary": None}
    assert response["text"] == {"format": {"type": "text"}} and "user" not in response


@pytest.mark.parametrize(
    "script",
    [
        [Delta(reasoning="hmm"), Delta(encrypted_reasoning="gAAA1"), Delta(content="Hello"), Delta(usage=USAGE)],
        [Delta(tool_calls=[{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{}"}}])],
        [Delta(content="cut"), Delta(finish_reason="length")],
    ],
)
def test_the_non_stream_object_is_the_streams_final_response(script: Script):
    streamed = Run(script).response
    finished: list[dict[str, Any]] = []

    async def finish(response: dict[str, Any]) -> None:
        finished.append(response)

    whole = answer(script)
    response = asyncio.run(response_object(whole, responses_request(), CHAT, RESPONSE_ID, finish))
    assert_valid("Response", response)
    Response.model_validate(response, strict=True)
    assert finished == [response] and whole.closed and whole.usage
    ids = ("id", "created_at", "completed_at")
    assert _without_ids(response, ids) == _without_ids(streamed, ids)


def _without_ids(response: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The response with generated ids and times left out (they differ between two renderings)."""
    output = [{k: v for k, v in item.items() if k not in ("id", "call_id")} for item in response["output"]]
    return {**{k: v for k, v in response.items() if k not in keys}, "output": output}


def test_a_response_that_cannot_be_stored_fails():
    class Unstored(Run):
        async def finish(self, response: dict[str, Any]) -> None:
            raise RuntimeError("the database is gone")

    run = Unstored([Delta(content="Hello")])
    assert run.types[-2:] == ["response.output_item.done", "response.failed"]
    assert run.response["error"]["code"] == "server_error" and run.response["output"][0]["status"] == "completed"
    assert run.answer.closed
