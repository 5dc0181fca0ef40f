"""Type and range checks of a chat-completion body, as OpenAI's spec (`CreateChatCompletionRequest`) states them.

This is the hot path, so no jsonschema here: small hand-written checks on the parsed dict, composed into one
table per object (`FIELDS` for the body, `ROLES` for messages). A request pays only for the fields it sends.
Every failure is a 400 naming the `param` (`messages[0].content[1].text`), with OpenAI's wording and codes.
Fields the spec does not know pass through: OpenAI-compatible servers (vLLM, Ollama) take extensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import orjson

from openai_compat.errors import invalid

Check = Callable[[Any, str], None]  # raises a 400 APIError naming `param` when `value` is wrong

JSON_TYPES = {str: "a string", bool: "a boolean", int: "an integer", float: "a decimal", list: "an array"}


def described(value: Any) -> str:
    if value is None:
        return "null"
    return JSON_TYPES.get(type(value), "an object")


def wrong_type(param: str, expected: str, value: Any) -> NoReturn:
    message = f"Invalid type for '{param}': expected {expected}, but got {described(value)} instead."
    raise invalid(param, message, code="invalid_type")


def wrong_value(param: str, value: Any, allowed: tuple[str, ...]) -> NoReturn:
    shown = repr(value[:80]) if isinstance(value, str) else described(value)
    message = f"Invalid value for '{param}': {shown}. Supported values are: {', '.join(repr(v) for v in allowed)}."
    raise invalid(param, message, code="invalid_value")


def out_of_range(param: str, value: float, low: float | None, high: float | None, kind: str) -> None:
    if low is not None and value < low:
        message = f"Invalid '{param}': {kind} below minimum value. Expected a value >= {low}, but got {value} instead."
        raise invalid(param, message, code=f"{kind}_below_min_value")
    if high is not None and value > high:
        message = f"Invalid '{param}': {kind} above maximum value. Expected a value <= {high}, but got {value} instead."
        raise invalid(param, message, code=f"{kind}_above_max_value")


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body, which must be a JSON object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid(None, "We could not parse the JSON body of your request. It must be a JSON object.") from None
    if not isinstance(body, dict):
        raise invalid(None, "The request body must be a JSON object.")
    return body


# --- Building blocks ------------------------------------------------------------------------------
def string(value: Any, param: str) -> None:
    if not isinstance(value, str):
        wrong_type(param, "a string", value)


def short_string(max_length: int) -> Check:
    def check(value: Any, param: str) -> None:
        string(value, param)
        if len(value) > max_length:
            message = (
                f"Invalid '{param}': string too long. Expected a string with maximum length {max_length}, "
                f"but got a string with length {len(value)} instead."
            )
            raise invalid(param, message, code="string_above_max_length")

    return check


def boolean(value: Any, param: str) -> None:
    if not isinstance(value, bool):
        wrong_type(param, "a boolean", value)


def any_object(value: Any, param: str) -> None:
    if not isinstance(value, dict):
        wrong_type(param, "an object", value)


def number(low: float, high: float) -> Check:
    def check(value: Any, param: str) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            wrong_type(param, "a decimal", value)
        out_of_range(param, value, low, high, "decimal")

    return check


def integer(low: int | None = None, high: int | None = None) -> Check:
    def check(value: Any, param: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            wrong_type(param, "an integer", value)
        out_of_range(param, value, low, high, "integer")

    return check


def enum(*allowed: str) -> Check:
    def check(value: Any, param: str) -> None:
        if not isinstance(value, str):
            wrong_type(param, "a string", value)
        if value not in allowed:
            wrong_value(param, value, allowed)

    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, param: str) -> None:
        if value is not None:
            inner(value, param)

    return check


def array(item: Check, min_items: int = 0, max_items: int | None = None) -> Check:
    def check(value: Any, param: str) -> None:
        if not isinstance(value, list):
            wrong_type(param, "an array", value)
        if len(value) < min_items:
            message = f"Invalid '{param}': empty array. Expected an array with minimum length {min_items}."
            raise invalid(param, message, code="empty_array")
        if max_items is not None and len(value) > max_items:
            message = f"Invalid '{param}': array too long. Expected an array with maximum length {max_items}."
            raise invalid(param, message, code="array_above_max_length")
        for i, element in enumerate(value):
            item(element, f"{param}[{i}]")

    return check


def fields(required: dict[str, Check] | None = None, optional: dict[str, Check] | None = None) -> Check:
    """An object: each required key present, and each known key that is present checked."""
    required = required or {}
    known = {**required, **(optional or {})}

    def check(value: Any, param: str) -> None:
        if not isinstance(value, dict):
            wrong_type(param, "an object", value)
        for name in required:
            if name not in value:
                message = f"Missing required parameter: '{param}.{name}'."
                raise invalid(f"{param}.{name}", message, code="missing_required_parameter")
        for name, item in value.items():
            if (rule := known.get(name)) is not None:
                rule(item, f"{param}.{name}")

    return check


def anything(value: Any, param: str) -> None:
    """Any value: a field (or a kind of an open union) passed on without being read."""


def tagged(variants: dict[str, Check], others: Check | None = None) -> Check:
    """An object whose `type` picks its shape (OpenAI's discriminated unions); `others` checks any other string
    `type` where the union is open (the Responses API's tools and items: kinds the gateway passes on unread)."""
    allowed = tuple(variants)

    def check(value: Any, param: str) -> None:
        if not isinstance(value, dict):
            wrong_type(param, "an object", value)
        kind = value.get("type")
        rule = variants.get(kind, others) if isinstance(kind, str) else None
        if rule is None:
            wrong_value(f"{param}.type", kind, allowed)
        rule(value, param)

    return check


def either(*rules: tuple[type, Check], expected: str) -> Check:
    """A value of one of several JSON types, each with its own rule (string or array, string or object)."""

    def check(value: Any, param: str) -> None:
        for kind, rule in rules:
            if isinstance(value, kind):
                rule(value, param)
                return
        wrong_type(param, expected, value)

    return check
