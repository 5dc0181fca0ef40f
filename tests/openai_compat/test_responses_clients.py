"""`POST /v1/responses` through real clients: the `openai` SDK and the OpenAI Agents SDK against the real gateway,
over each kind of credential (fake upstreams).

What the SDK parses leniently is also checked strictly: the raw JSON with pydantic's `Response.model_validate` and
the spec, the raw stream event by event with the SDK's event union and the spec's stream rules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests import sdk
from tests.factories import chatgpt_account, codex_account, openai_key
from tests.fakes import chatgpt_server, codex_server, openai_server
from tests.gateway import ROOT, settle
from tests.spec import assert_valid, assert_valid_responses_stream
from tokens.models import WireApi

pytestmark = pytest.mark.django_db(transaction=True)
AGENTS_TRANSCRIPT = ROOT / "tests" / "artifacts" / "agents-transcript.txt"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}  # no `strict`: the response repeats it with `strict: null`, as the spec's FunctionTool requires the key
QUESTION = "Weather in Paris?"
EVENTS = TypeAdapter(ResponseStreamEvent)


@dataclass(frozen=True)
class Upstream:
    kind: str
    model: str
    answer: str


def credential(kind: str, openai_url: str) -> Upstream:
    """One credential of the kind, alone in the pool, and what its fake upstream answers."""
    if kind == "codex":
        codex_account(account_id="acc-ok-clients")
        found = Upstream(kind, "gpt-5.5", codex_server.ANSWER)
    elif kind == "chatgpt":
        chatgpt_account("at-ok-clients")
        found = Upstream(kind, "gpt-4o", chatgpt_server.ANSWER)
    else:
        wire_api = WireApi.RESPONSES if kind == "openai-responses" else WireApi.CHAT
        openai_key(openai_url + "/v1", f"sk-ok-{kind}", ["fake-model"], wire_api=wire_api)
        found = Upstream(kind, "fake-model", openai_server.ANSWER)
    settle()
    return found


@pytest.fixture(params=["codex", "openai", "openai-responses", "chatgpt"])
def upstream(request: pytest.FixtureRequest, fake_codex, fake_openai, fake_chatgpt) -> Upstream:
    return credential(request.param, fake_openai.url)


@pytest.fixture(params=["codex", "openai", "openai-responses"])
def caller(request: pytest.FixtureRequest, fake_codex, fake_openai) -> Upstream:
    """A kind that calls tools: each fake calls the first tool it is given, `{"city": "Paris"}` here."""
    return credential(request.param, fake_openai.url)


def client(gateway) -> openai.OpenAI:
    return sdk.client(gateway.url)


def post(gateway, **body) -> httpx.Response:
    headers = {"Authorization": "Bearer test-code"}
    return httpx.post(gateway.url + "/v1/responses", json=body, headers=headers, timeout=30)


def strict_response(raw: dict) -> Response:
    """The body as the spec and the SDK's own types demand it (the SDK itself parses leniently)."""
    assert_valid("Response", raw)
    return Response.model_validate(raw)


def strict_stream(raw: bytes) -> list[dict]:
    """The events as the spec, its stream rules and the SDK's own event union demand them."""
    events = assert_valid_responses_stream(raw)
    for event in events:
        EVENTS.validate_python(event)
    return events


def test_create_without_stream(gateway, upstream):
    raw = post(gateway, model=upstream.model, input="Say hello")
    assert raw.status_code == 200, raw.text
    checked = strict_response(raw.json())
    assert checked.output_text == upstream.answer and checked.status == "completed"
    reply = client(gateway).responses.create(model=upstream.model, input="Say hello", instructions="Be brief.")
    assert reply.output_text == upstream.answer and reply.id.startswith("resp_")
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens


def test_create_with_stream(gateway, upstream):
    raw = post(gateway, model=upstream.model, input="Say hello", stream=True)
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream"), raw.text
    events = strict_stream(raw.content)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    streamed = list(client(gateway).responses.create(model=upstream.model, input="Say hello", stream=True))
    text = "".join(e.delta for e in streamed if e.type == "response.output_text.delta")
    assert text == upstream.answer
    assert streamed[-1].type == "response.completed" and streamed[-1].response.output_text == upstream.answer


def test_stream_helper_final_response(gateway, upstream):
    api = client(gateway)
    with api.responses.stream(model=upstream.model, input=[{"role": "user", "content": "Say hello"}]) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == upstream.answer and final.output_text == upstream.answer
    assert final.status == "completed"


def test_function_call_stream_matches_spec(gateway, caller):
    raw = post(gateway, model=caller.model, input=QUESTION, tools=[WEATHER], stream=True)
    assert raw.status_code == 200, raw.text
    events = strict_stream(raw.content)
    (call,) = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert call["type"] == "function_call" and call["arguments"] == "".join(codex_server.ARGUMENTS)


def called(response: Response) -> dict:
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.arguments == "".join(codex_server.ARGUMENTS)
    return {"type": "function_call_output", "call_id": call.call_id, "output": "18 C and sunny"}


def replayed_call(kind: str, fake_codex, fake_openai) -> list[str]:
    """The call id of the function call the upstream last got back, then the id its output answers."""
    if kind == "openai":
        messages = fake_openai.requests[-1]["messages"]
        return [messages[-2]["tool_calls"][0]["id"], messages[-1]["tool_call_id"]]
    sent = fake_codex.requests[-1]["body"] if kind == "codex" else fake_openai.requests[-1]
    call, output = sent["input"][-2:]
    assert [call["type"], output["type"]] == ["function_call", "function_call_output"]
    return [call["call_id"], output["call_id"]]


def test_function_call_round_trip_replaying_items(gateway, fake_codex, fake_openai, caller):
    """Stateless, as the Agents SDK and Codex do it: the client sends the call back with its output."""
    api = client(gateway)
    with api.responses.stream(model=caller.model, input=QUESTION, tools=[WEATHER], store=False) as stream:
        first = stream.get_final_response()
    output = called(first)
    replay = [{"role": "user", "content": QUESTION}, *first.output, output]
    second = api.responses.create(model=caller.model, input=replay, tools=[WEATHER])
    assert second.output_text == "The tool said: 18 C and sunny"
    assert replayed_call(caller.kind, fake_codex, fake_openai) == [output["call_id"]] * 2


def test_function_call_round_trip_with_previous_response_id(gateway, fake_codex, fake_openai, caller):
    """The gateway keeps the first turn; the client sends only the tool's output, and the upstream gets both."""
    first = client(gateway).responses.create(model=caller.model, input=QUESTION, tools=[WEATHER])
    output = called(first)
    raw = post(gateway, model=caller.model, previous_response_id=first.id, input=[output], tools=[WEATHER])
    assert raw.status_code == 200, raw.text
    second = strict_response(raw.json())
    assert second.output_text == "The tool said: 18 C and sunny" and second.previous_response_id == first.id
    assert replayed_call(caller.kind, fake_codex, fake_openai) == [output["call_id"]] * 2


def test_tools_over_a_chatgpt_web_account_are_refused(gateway, fake_chatgpt):
    chatgpt_account("at-ok-notools")
    settle()
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).responses.create(model="gpt-4o", input=QUESTION, tools=[WEATHER])
    assert refused.value.code == "tools_not_supported" and refused.value.param == "tools"


@pytest.fixture(scope="module")
def transcripts() -> Iterator[dict[str, str]]:
    """Each Agents SDK run's items by credential kind, written to one file when the module is done."""
    runs: dict[str, str] = {}
    yield runs
    AGENTS_TRANSCRIPT.parent.mkdir(exist_ok=True)
    AGENTS_TRANSCRIPT.write_text("".join(f"== credential kind: {kind}\n{text}\n" for kind, text in runs.items()))


def test_agents_sdk_runs_a_function_tool(gateway, caller, transcripts):
    """An Agent with one tool, run to completion and streamed; tracing is off (it would export over the network)."""
    # Imported here: the Agents SDK takes ~1 s to import, which every pytest process would pay at collection.
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"18 C and sunny in {city}"

    api = sdk.async_client(gateway.url)
    model = OpenAIResponsesModel(model=caller.model, openai_client=api)
    agent = Agent(name="Weather", instructions="Use the tool.", tools=[get_weather], model=model)

    async def both() -> tuple:
        streamed = Runner.run_streamed(agent, QUESTION)
        kinds = [event.type async for event in streamed.stream_events()]
        return await Runner.run(agent, QUESTION), streamed, kinds

    result, streamed, kinds = asyncio.run(both())
    transcripts[caller.kind] = transcript(result)
    assert cities == ["Paris", "Paris"]
    assert result.final_output == "The tool said: 18 C and sunny in Paris"
    assert streamed.final_output == result.final_output and "raw_response_event" in kinds
    items = [item.type for item in result.new_items]
    assert items == ["tool_call_item", "tool_call_output_item", "message_output_item"]


def transcript(result) -> str:
    lines = [f"input: {result.input!r}"]
    for item in result.new_items:
        raw = item.raw_item if isinstance(item.raw_item, dict) else item.raw_item.model_dump(exclude_none=True)
        lines.append(f"{item.type}: {json.dumps(raw)}")
    return "\n".join([*lines, f"final_output: {result.final_output!r}", ""])
