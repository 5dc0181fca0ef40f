"""The Codex CLI 0.171.0 (a real client, run offline) against `POST /v1/responses` of the real gateway.

Its requests are the hard case of the Responses front end: no `instructions`, the system prompt as `developer`
items, `namespace`, `custom`, `tool_search` and `web_search` tools beside function tools, reasoning asked for,
`store: false`, and the whole conversation replayed on the second turn. It needs `output_item.done` for every
item and `response.completed` with an id, else it prints nothing or fails.
"""

from __future__ import annotations

import json
from unittest.mock import ANY

import pytest

from tests.codex_cli import Run, codex_exec
from tests.factories import chatgpt_account, codex_account, openai_key
from tests.fakes import codex_server
from tests.gateway import ROOT, settle
from tokens.models import WireApi

pytestmark = pytest.mark.django_db(transaction=True)
TRANSCRIPT = ROOT / "tests" / "artifacts" / "codex-cli-transcript.jsonl"


def explain(run: Run, gateway) -> str:
    """Everything that says why a run failed."""
    log = gateway.logs()[-3000:]
    return f"exit {run.code}\nstderr:\n{run.stderr[-3000:]}\nevents:\n{run.jsonl()}\ngateway log:\n{log}"


def test_answer_over_a_codex_account(gateway, fake_codex, tmp_path):
    codex_account(account_id="acc-text-cli")
    settle()
    run = codex_exec(gateway.url, tmp_path, "Say hello", "gpt-5.5")
    assert run.code == 0 and run.answer == codex_server.ANSWER, explain(run, gateway)
    assert [e["type"] for e in run.events][-1] == "turn.completed"
    (sent,) = fake_codex.requests
    body = sent["body"]
    assert body["store"] is False and body["stream"] is True and isinstance(body["instructions"], str)
    assert body["input"][-1]["role"] == "user" and body["input"][-1]["content"][0]["text"] == "Say hello"


@pytest.mark.parametrize("wire_api", [WireApi.CHAT, WireApi.RESPONSES])
def test_round_trip_over_an_openai_key(gateway, fake_openai, tmp_path, wire_api):
    """An `openai` key, translated to Chat Completions or passed to its own `/responses`. Its fake calls the first
    tool (`exec_command`) with "Paris" for every string property; the CLI refuses those arguments and sends the
    refusal back as the call's output, which the fake quotes: a whole round trip all the same."""
    openai_key(fake_openai.url + "/v1", f"sk-ok-cli-{wire_api}", ["fake-model"], wire_api=wire_api)
    settle()
    run = codex_exec(gateway.url, tmp_path, "Say hello", "fake-model")
    assert run.code == 0 and run.answer.startswith("The tool said: "), explain(run, gateway)
    assert len(fake_openai.requests) == 2
    second = fake_openai.requests[1]
    if wire_api == WireApi.CHAT:
        (call,) = second["messages"][-2]["tool_calls"]
        assert call["function"]["name"] == "exec_command"
        assert second["messages"][-1] == {"role": "tool", "tool_call_id": call["id"], "content": ANY}
    else:
        assert [item["type"] for item in second["input"][-2:]] == ["function_call", "function_call_output"]


def test_shell_tool_round_trip_over_a_codex_account(gateway, fake_codex, tmp_path):
    """The upstream thinks, then asks for `exec_command`; the CLI runs it in its sandbox and sends the output back
    with the whole conversation, the reasoning item's encrypted content included (nothing is stored upstream)."""
    codex_account(account_id="acc-shell-cli")
    settle()
    summaries = ("model_reasoning_summary=auto",)
    run = codex_exec(gateway.url, tmp_path, "Leave a marker", "gpt-5.5", "workspace-write", summaries)
    TRANSCRIPT.parent.mkdir(exist_ok=True)
    TRANSCRIPT.write_text(run.jsonl())
    assert run.code == 0, explain(run, gateway)
    (command,) = run.items("command_execution")
    assert codex_server.SHELL_COMMAND in command["command"] and command["exit_code"] == 0
    assert (tmp_path / "work" / "marker.txt").read_text() == "probe-tool-ran\n"
    assert run.answer.startswith("The tool said: ") and run.answer.rstrip().endswith("done"), explain(run, gateway)

    first, second = (request["body"] for request in fake_codex.requests)
    assert first["store"] is False and first["stream"] is True
    assert "exec_command" in {tool.get("name") for tool in first["tools"]}
    reasoning, call, output = second["input"][-3:]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"] == "gAAAA-opaque"
    assert call["type"] == "function_call" and call["name"] == "exec_command"
    assert json.loads(call["arguments"]) == {"cmd": codex_server.SHELL_COMMAND}
    assert output["type"] == "function_call_output" and output["call_id"] == call["call_id"]
    assert "done" in output["output"]


def test_a_pool_that_cannot_call_tools_is_an_error_it_shows(gateway, fake_chatgpt, tmp_path):
    """The CLI always sends tools; ChatGPT web accounts cannot call them: the 400 reaches the CLI whole."""
    chatgpt_account("at-ok-codex-cli")
    settle()
    run = codex_exec(gateway.url, tmp_path, "Say hello", "gpt-4o")
    assert run.code == 1 and run.events[-1]["type"] == "turn.failed", explain(run, gateway)
    error = json.loads(run.events[-1]["error"]["message"])["error"]
    assert error["code"] == "tools_not_supported" and error["param"] == "tools"
    assert len(fake_chatgpt.requests) == 0
