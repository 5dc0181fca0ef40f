"""What `parse_chat_request` costs per request (JSON decoding, then validation), on a typical and a large body.

In-process and single-threaded: the validation is pure Python on the hot path, so its figure is its own.
"""

from __future__ import annotations

import timeit

import orjson

from openai_compat.schema import parse_chat_request

TYPICAL = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a haiku about the sea."},
        {"role": "assistant", "content": "Waves fold into foam."},
        {"role": "user", "content": "Another one, please."},
    ],
    "stream": True,
    "stream_options": {"include_usage": True},
    "temperature": 0.7,
    "max_tokens": 256,
}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
PARTS = [
    {"type": "text", "text": "Describe this picture. " * 20},
    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
]
LARGE = {
    **TYPICAL,
    "messages": [{"role": "user", "content": PARTS}, {"role": "assistant", "content": "A sunset. " * 50}] * 50,
    "tools": [TOOL] * 10,
    "tool_choice": "auto",
}


def per_call_us(fn, arg: bytes, rounds: int = 5) -> float:
    """The best of `rounds` timings, in µs per call: the floor is what the code costs, the rest is noise."""
    number = max(1, 20_000 // max(1, len(arg) // 200))
    return min(timeit.repeat(lambda: fn(arg), number=number, repeat=rounds)) / number * 1e6


def costs() -> dict[str, tuple[float, float]]:
    """Per body: (µs to decode the JSON alone, µs to decode and validate it)."""
    found = {}
    for name, body in (("typical", TYPICAL), ("large", LARGE)):
        raw = orjson.dumps(body)
        found[f"{name} ({len(raw) // 1024 or len(raw)} {'KB' if len(raw) >= 1024 else 'B'})"] = (
            per_call_us(orjson.loads, raw),
            per_call_us(parse_chat_request, raw),
        )
    return found


def line() -> str:
    parts = [
        f"{name}: {total:.1f} µs, of which validation {total - decode:.1f} µs"
        for name, (decode, total) in costs().items()
    ]
    return "parse_chat_request per request (best of 5): " + "; ".join(parts)


if __name__ == "__main__":
    print(line())
