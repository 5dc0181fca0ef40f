"""What serving the Responses API on the chat pipeline costs per request, in-process: parsing and validating the
body, translating it to chat, and rendering a 16-chunk answer as Responses events (against the same answer as
chat chunks). No server, no upstream: these are the only steps `POST /v1/responses` adds to the chat path.
"""

from __future__ import annotations

import os
import timeit
from collections.abc import Callable
from typing import Any

import django
import orjson

from openai_compat.upstreams.base import Delta

FUNCTION = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a shell command and returns its output. " * 4,
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}, "tty": {"type": "boolean"}},
        "required": ["cmd"],
    },
    "strict": False,
}
TYPICAL = {"model": "gpt-5.5", "instructions": "Be brief.", "input": "Write a haiku about the sea.", "stream": True}


def message(role: str, text: str, kind: str = "input_text") -> dict[str, Any]:
    return {"type": "message", "id": "msg_1", "role": role, "content": [{"type": kind, "text": text}]}


# The shape of a Codex CLI turn after one tool call (codex-protocol C2): a long developer prompt, seven tools, the
# call and its output replayed.
CODEX_CLI = {
    "model": "gpt-5.5",
    "stream": True,
    "store": False,
    "input": [
        message("developer", "You are a coding agent. " * 700),
        message("user", "<environment_context>cwd=/tmp/work shell=bash</environment_context>"),
        message("user", "List the files here."),
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA" * 200},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "exec_command",
            "arguments": '{"cmd":"ls"}',
        },
        {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "a.txt\nb.txt\n"},
    ],
    "tools": [{**FUNCTION, "name": f"tool_{i}"} for i in range(7)] + [{"type": "web_search"}],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "reasoning": {"summary": "auto"},
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199a-session",
}
ANSWER = [Delta(content=f"word{i} ") for i in range(16)] + [
    Delta(finish_reason="stop", usage={"prompt_tokens": 20, "completion_tokens": 16, "total_tokens": 36})
]


def per_call_us(fn: Callable[[], object], rounds: int = 5, number: int = 2000) -> float:
    """The best of `rounds` timings, in µs per call: the floor is what the code costs, the rest is noise."""
    return min(timeit.repeat(fn, number=number, repeat=rounds)) / number * 1e6


def costs() -> dict[str, float]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat2api_site.settings")
    django.setup()  # the renderer reads settings and imports the pipeline (models included)
    from openai_compat import sse
    from openai_compat.responses.render import Builder, Numbered
    from openai_compat.responses.request import parse_responses_request
    from openai_compat.responses.translate import to_chat

    found: dict[str, float] = {}
    for name, body in (("typical", TYPICAL), ("Codex CLI turn", CODEX_CLI)):
        raw = orjson.dumps(body)
        label = f"{name} ({len(raw) // 1024 or len(raw)} {'KB' if len(raw) >= 1024 else 'B'})"
        found[f"parse {label}"] = per_call_us(lambda raw=raw: parse_responses_request(raw), number=500)
        parsed = parse_responses_request(raw)
        found[f"to_chat {label}"] = per_call_us(lambda parsed=parsed: to_chat(parsed, []), number=500)
    request = parse_responses_request(orjson.dumps(TYPICAL))

    def render_responses() -> bytes:
        builder, numbered = Builder(request, "resp_bench"), Numbered()
        frames = [numbered(builder.start())]
        frames += [numbered(builder.feed(delta)) for delta in ANSWER]
        frames.append(numbered(builder.close()))
        return b"".join(frames) + numbered(
            [{"type": "response.completed", "response": builder.final(ANSWER[-1].usage)}]
        )

    def render_chat() -> bytes:
        frames = [sse.frame(sse.chunk("chatcmpl-bench", 0, "gpt-5.5", {"content": d.content})) for d in ANSWER[:-1]]
        return b"".join(frames) + sse.frame(sse.chunk("chatcmpl-bench", 0, "gpt-5.5", {}, "stop")) + sse.DONE

    found["render 16 chunks as Responses events"] = per_call_us(render_responses, number=500)
    found["render 16 chunks as chat chunks"] = per_call_us(render_chat, number=500)
    return found


def line() -> str:
    return "Responses API per request (best of 5): " + "; ".join(f"{k}: {v:.0f} µs" for k, v in costs().items())


if __name__ == "__main__":
    print(line())
