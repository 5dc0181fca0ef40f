"""Token counts for replies whose upstream does not report usage."""

from __future__ import annotations

from openai_compat.schema import ChatRequest, text_of

PER_MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    """About four characters a token for English text; replaced by a real tokenizer where it matters."""
    return (len(text) + 3) // 4


def estimate_usage(request: ChatRequest, completion_text: str) -> dict[str, int]:
    prompt = sum(estimate_tokens(text_of(m.get("content"))) + PER_MESSAGE_OVERHEAD for m in request.messages)
    completion = estimate_tokens(completion_text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
