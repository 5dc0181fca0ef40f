"""Hypothesis strategies generated from OpenAI's spec (tests/spec.py): valid bodies, and bodies with one node broken.

A small JSON Schema to strategy compiler rather than hypothesis-jsonschema or schemathesis: those draw about
50 ms per chat body from this document (they check every `oneOf` branch), which puts 2,000 requests far past a
minute. Here `oneOf` is drawn as `anyOf`, strings and arrays are kept short, and `$ref` cycles are deferred.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from hypothesis import strategies as st

from tests.spec import document

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
SHORT_TEXT = st.text(max_size=12)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy:
    if ref := schema.get("$ref"):
        return component(ref.rsplit("/", 1)[1])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            return st.one_of([from_schema(branch) for branch in schema[keyword]])
    if "allOf" in schema:
        return objects([resolved(branch) for branch in schema["allOf"]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    return typed(kind, schema)


def typed(kind: str | None, schema: dict[str, Any]) -> st.SearchStrategy:
    if kind == "string":
        low = schema.get("minLength", 0)
        return st.text(min_size=low, max_size=max(low, min(schema.get("maxLength", 12), 12)))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(low, high) | st.floats(low, high, allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", 3), 3))
        return st.lists(from_schema(schema.get("items", {})), min_size=low, max_size=high)
    if kind == "object" or "properties" in schema:
        return objects([schema])
    return JSON


def resolved(schema: dict[str, Any]) -> dict[str, Any]:
    while ref := schema.get("$ref"):
        schema = document()["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def objects(parts: list[dict[str, Any]]) -> st.SearchStrategy:
    """An object with every required property and any of the optional ones (`allOf` parts merged)."""
    properties: dict[str, Any] = {}
    required: set[str] = set()
    for part in parts:
        properties.update(part.get("properties", {}))
        required.update(part.get("required", []))
    return st.fixed_dictionaries(
        {name: from_schema(properties[name]) for name in required if name in properties},
        optional={name: from_schema(s) for name, s in properties.items() if name not in required},
    )


@cache
def component(name: str) -> st.SearchStrategy:
    return st.deferred(lambda: from_schema(document()["components"]["schemas"][name]))


def request_body(operation_id: str) -> st.SearchStrategy:
    """The JSON body an operation takes, as its `requestBody` says."""
    for methods in document()["paths"].values():
        for operation in methods.values():
            if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                return from_schema(operation["requestBody"]["content"]["application/json"]["schema"])
    raise KeyError(operation_id)


@st.composite
def broken(draw: st.DrawFn, valid: st.SearchStrategy) -> Any:
    """A valid value with one node, at any depth, replaced by arbitrary JSON (a number for a text, `{}` for a role)."""
    value = draw(valid)
    nodes = list(walk(value))
    container, key = draw(st.sampled_from(nodes)) if nodes else (None, None)
    if container is None:
        return draw(JSON)
    container[key] = draw(JSON)
    return value


def walk(value: Any) -> Any:
    """(container, key) for every node under `value`."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield value, key
        yield from walk(item)
