"""The official OpenAI spec checker from ../shared/openai/check.py, loaded once per session."""

from __future__ import annotations

from functools import cache

from check import SpecValidator, check_sse  # type: ignore[import-not-found]


@cache
def validator() -> SpecValidator:
    return SpecValidator()


def assert_valid(component: str, instance: dict) -> None:
    errors = validator().errors(component, instance)
    assert not errors, errors


def assert_valid_sse(body: str) -> None:
    errors, _ = check_sse(validator(), "CreateChatCompletionStreamResponse", body, False)
    assert not errors, errors
