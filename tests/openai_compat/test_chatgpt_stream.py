"""The ChatGPT stream parser on its own: no database, no server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from openai_compat.upstreams.base import Delta
from openai_compat.upstreams.chatgpt_markdown import NO_LINK, Asset, cite, hold_back
from openai_compat.upstreams.chatgpt_stream import ChatGPTStream, StreamError, apply_op
from tests.fakes import chatgpt_server as fake

CAPTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "2026-03-22_f-conversation_delta-encoding-v1_gpt-5-3_team.sse"
)


def data_lines(body: bytes) -> list[bytes]:
    return [line[5:] for line in body.splitlines() if line.startswith(b"data:")]


def run(payloads: list[Any], end: bool = False, link: Any = None) -> tuple[list[Delta], ChatGPTStream]:
    parser = ChatGPTStream(link=link)
    out = [delta for payload in payloads for delta in parser.feed(payload)]
    return out + (parser.end() if end else []), parser


def text(deltas: list[Delta]) -> str:
    return "".join(d.content for d in deltas)


def reasoning(deltas: list[Delta]) -> str:
    return "".join(d.reasoning for d in deltas)


def finish(deltas: list[Delta]) -> list[str]:
    return [d.finish_reason for d in deltas if d.finish_reason]


def served(keyword: str = "", scenario: str = "ok", v1: bool = True, history: bool = True, **extra: Any) -> list[bytes]:
    """The `data:` payloads the fake upstream would send for a prompt containing `keyword`."""
    body = {"model": "gpt-4o", "history_and_training_disabled": history, **extra}
    body["messages"] = [{"author": {"role": "user"}, "content": {"content_type": "text", "parts": [keyword]}}]
    return data_lines(b"".join(fake.frames_for(body, scenario, v1)))


def gateway_link(asset: Asset) -> str:
    return f"https://gw/{asset.kind}/{asset.id}?c={asset.conversation_id}&m={asset.message_id}"


def assistant(mid: str, parts: list[str], status: str = "in_progress", **extra: Any) -> dict[str, Any]:
    message = {"id": mid, "author": {"role": "assistant"}, "content": {"content_type": "text", "parts": parts}}
    return {"message": {"status": status, "recipient": "all", "metadata": {}, **message, **extra}, "error": None}


def test_real_capture_gives_exactly_its_answer():
    deltas, parser = run(data_lines(CAPTURE.read_bytes()))
    assert text(deltas) == "Hi. What do you need help with?"
    assert [d.content for d in deltas if d.content] == ["Hi.", " What do", " you need help with?"]
    assert reasoning(deltas) == ""
    assert finish(deltas) == ["stop"]
    assert parser.encoding == "v1" and parser.done


def test_legacy_cumulative_snapshots_become_increments():
    payloads = [
        {"message": {"id": "u1", "author": {"role": "user"}, "content": {"content_type": "text", "parts": ["Say hi"]}}},
        assistant("a1", [""]),
        assistant("a1", ["Hi"]),
        assistant("a1", ["Hi there!"]),
        assistant("a1", ["Hi there!"], "finished_successfully", end_turn=True),
        {"type": "title_generation", "title": "Greeting", "conversation_id": "c1"},
        b"[DONE]",
    ]
    deltas, parser = run(payloads)
    assert [d.content for d in deltas if d.content] == ["Hi", " there!"]
    assert finish(deltas) == ["stop"] and parser.encoding == "legacy"


def test_protocol_v1_example_with_carry_forward():
    closing = [
        {"p": "/message/content/parts/0", "o": "append", "v": "!"},
        {"p": "/message/status", "o": "replace", "v": "finished_successfully"},
        {"p": "/message/end_turn", "o": "replace", "v": True},
        {"p": "/message/metadata", "o": "append", "v": {"finish_details": {"type": "stop"}, "is_complete": True}},
    ]
    payloads = [
        b'"v1"',
        {"p": "", "o": "add", "v": assistant("a1", [""]), "c": 0},
        {"p": "/message/content/parts/0", "o": "append", "v": "Hi"},
        {"v": " there"},
        {"type": "title_generation", "title": "Greeting", "conversation_id": "c1"},
        {"p": "", "o": "patch", "v": closing},
        b"[DONE]",
    ]
    deltas, _ = run(payloads)
    assert [d.content for d in deltas if d.content] == ["Hi", " there", "!"]
    assert finish(deltas) == ["stop"]


def test_v1_channels_carry_forward_and_roots_without_p_or_o():
    payloads = [
        b'"v1"',
        {"p": "", "o": "add", "v": assistant("a0", ["first"], "finished_successfully"), "c": 0},
        {"v": assistant("a1", [""]), "c": 1},
        {"p": "/message/content/parts/0", "o": "append", "v": "one"},
        {"v": " two"},
        {"v": "!", "p": "/message/content/parts/0", "o": "append", "c": 0},
        {"v": " three", "c": 1},
    ]
    deltas, parser = run(payloads)
    assert [d.content for d in deltas] == ["first", "\n\none", " two", "!", " three"]
    assert parser.roots[0]["message"]["content"]["parts"] == ["first!"]
    assert parser.roots[1]["message"]["content"]["parts"] == ["one two three"]


@pytest.mark.parametrize(
    ("path", "op", "value", "expected"),
    [
        ("/a", "replace", 5, {"a": 5, "s": "abc", "l": [1, 2], "m": {"x": 1}}),
        ("/s", "append", "de", {"a": 1, "s": "abcde", "l": [1, 2], "m": {"x": 1}}),
        ("/s", "truncate", 1, {"a": 1, "s": "a", "l": [1, 2], "m": {"x": 1}}),
        ("/l", "append", [3], {"a": 1, "s": "abc", "l": [1, 2, 3], "m": {"x": 1}}),
        ("/l/0", "add", 0, {"a": 1, "s": "abc", "l": [0, 1, 2], "m": {"x": 1}}),
        ("/l/1", "remove", None, {"a": 1, "s": "abc", "l": [1], "m": {"x": 1}}),
        ("/l/-", "add", 9, {"a": 1, "s": "abc", "l": [1, 2, 9], "m": {"x": 1}}),
        ("/m", "append", {"y": 2}, {"a": 1, "s": "abc", "l": [1, 2], "m": {"x": 1, "y": 2}}),
        ("/a", "remove", None, {"s": "abc", "l": [1, 2], "m": {"x": 1}}),
        ("/n/deep", "add", 1, {"a": 1, "s": "abc", "l": [1, 2], "m": {"x": 1}, "n": {"deep": 1}}),
        ("/a", "unknown-op", 7, {"a": 1, "s": "abc", "l": [1, 2], "m": {"x": 1}}),
        ("", "add", {"new": True}, {"new": True}),
    ],
)
def test_v1_operations(path: str, op: str, value: Any, expected: dict):
    doc = {"a": 1, "s": "abc", "l": [1, 2], "m": {"x": 1}}
    assert apply_op(doc, path, op, value) == expected


def test_patch_applies_sub_operations_in_order():
    doc = {"message": {"content": {"parts": ["a"]}, "status": "in_progress"}}
    ops = [
        {"p": "/message/content/parts/0", "o": "append", "v": "b"},
        {"p": "/message/status", "o": "replace", "v": "finished_successfully"},
        {"p": "/message/a~1b", "o": "add", "v": 1},
    ]
    got = apply_op(doc, "", "patch", ops)
    assert got["message"] == {"content": {"parts": ["ab"]}, "status": "finished_successfully", "a/b": 1}


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_fake_answers_parse_in_both_framings(v1: bool):
    deltas, parser = run(served(v1=v1))
    assert text(deltas) == fake.ANSWER
    assert finish(deltas) == ["stop"] and parser.encoding == ("v1" if v1 else "legacy")


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_o1_reasoning_is_reasoning_not_content(v1: bool):
    deltas, _ = run(served("reason", v1=v1))
    assert reasoning(deltas) == fake.REASONING
    assert text(deltas) == fake.REASONED
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    assert all(not d.reasoning for d in deltas[first_content:])


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_thoughts_and_recap_are_reasoning(v1: bool):
    deltas, _ = run(served("think", v1=v1))
    assert reasoning(deltas) == f"**Thinking it over**\n\n{fake.THOUGHT}\n\nThought for 2s"
    assert text(deltas) == "42."


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_dalle_image_becomes_markdown_and_its_tool_call_stays_hidden(v1: bool):
    deltas, _ = run(served("draw", v1=v1), link=gateway_link)
    url = f"https://gw/file/file-AbC123?c={fake.CONVERSATION_ID}&m=m1"
    assert text(deltas) == f"![a red fox, watercolor]({url})\n\n{fake.CAPTION}"
    assert reasoning(deltas) == "" and "prompt" not in text(deltas)
    deltas, _ = run(served("draw", v1=v1))  # no link to give (history off): a note instead
    assert text(deltas) == f"{NO_LINK}\n\n{fake.CAPTION}"


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_4o_image_appears_once_finished_never_as_a_partial_render(v1: bool):
    asked: list[Asset] = []
    deltas, _ = run(served("imagegen", v1=v1), link=lambda a: asked.append(a) or gateway_link(a))
    assert [d.content for d in deltas if d.content] == [f"![Red fox]({gateway_link(asked[0])})"]
    assert asked == [Asset("sediment", "file_00ab", fake.CONVERSATION_ID, "m1")]


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_sandbox_link_is_rewritten_even_when_split_across_chunks(v1: bool):
    asked: list[Asset] = []
    deltas, _ = run(served("sandbox", v1=v1), link=lambda a: asked.append(a) or "https://gw/f/1")
    assert text(deltas) == fake.SANDBOX_TEXT.replace("sandbox:/mnt/data/table.csv", "https://gw/f/1")
    assert not any("sandbox" in d.content for d in deltas)
    assert asked == [Asset("sandbox", "/mnt/data/table.csv", fake.CONVERSATION_ID, "a-sb")]  # asked once
    deltas, _ = run(served("sandbox", v1=v1))  # no link: the text is left as it came
    assert text(deltas) == fake.SANDBOX_TEXT


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_citations_become_markdown_links(v1: bool):
    deltas, _ = run(served("cite", v1=v1))
    sky = f"([{fake.SKY['title']}]({fake.SKY['url']}))"
    assert text(deltas) == f"The sky is blue {sky} and grass is green {fake.GRASS_ALT}."
    assert not any(mark in d.content for d in deltas for mark in ("\u3010", "\ue200", "\ue201"))


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_citation_metadata_after_the_mark_still_gives_links(v1: bool):
    deltas, _ = run(served("latecite", v1=v1))
    sky = f"([{fake.SKY['title']}]({fake.SKY['url']}))"
    assert text(deltas) == f"The sky is blue {sky} and grass is green {fake.GRASS_ALT}."
    assert not any(mark in d.content for d in deltas for mark in ("\u3010", "\ue200", "\ue201"))


def test_citation_mark_without_metadata_is_held_then_shown_whole_at_the_end():
    mark = "\u301011\u2020source\u3011"
    growing = [assistant("a1", [fake.CITED[:n]]) for n in (10, 26, 40, len(fake.CITED))]
    deltas, _ = run(growing)
    assert text(deltas) == "The sky is blue"  # nothing after the mark while its metadata may still come
    done = assistant("a1", [fake.CITED], status="finished_successfully", end_turn=True)
    deltas, _ = run([*growing, done])
    assert text(deltas) == fake.CITED and mark in text(deltas)  # never dropped


def test_text_still_held_when_the_stream_ends_is_not_lost():
    deltas, _ = run([assistant("a1", [fake.CITED], end_turn=True), "[DONE]"])
    assert text(deltas) == fake.CITED
    assert finish(deltas) == ["stop"]


def test_cite_ignores_bad_offsets_and_unsafe_urls():
    bad = [{"start_ix": 5, "end_ix": 99, "metadata": {"url": "https://x"}}, {"start_ix": "a", "end_ix": 2}]
    assert cite("plain text", {"citations": bad}) == "plain text"
    js = [{"start_ix": 0, "end_ix": 1, "metadata": {"url": "javascript:alert(1)", "title": "x"}}]
    assert cite("[x]", {"citations": js}) == "x]"


@pytest.mark.parametrize(
    ("text", "held"),
    [
        ("see [file](sandbox:/mnt/da", "see [file]"),
        ("see [file](sand", "see [file]"),
        ("see [file](", "see [file]"),
        ("done [f](sandbox:/mnt/data/a.csv) ok", "done [f](sandbox:/mnt/data/a.csv) ok"),
        ("blue\u301011\u2020sou", "blue"),
        ("green \ue200cite\ue202turn0", "green "),
        ("blue\u301011\u2020source\u3011 and more", "blue"),
        ("green \ue200cite\ue202turn0search0\ue201. More", "green "),
        ("\u3010\u6ce8\u610f\u3011 plain brackets", "\u3010\u6ce8\u610f\u3011 plain brackets"),
        ("plain", "plain"),
    ],
)
def test_unfinished_links_and_marks_are_held_back(text: str, held: str):
    assert hold_back(text) == held


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_continuation_is_glued_to_the_cut_answer(v1: bool):
    parser = ChatGPTStream()
    deltas = [d for p in served("maxtokens", v1=v1) for d in parser.feed(p)]
    assert finish(deltas) == ["length"]
    assert (parser.conversation_id, parser.message_id) == (fake.CONVERSATION_ID, "cut-maxtokens-1")
    parser.resume()
    more = served(v1=v1, action="continue", parent_message_id=parser.message_id)
    deltas += [d for p in more for d in parser.feed(p)]
    assert text(deltas) == fake.CUT + fake.REST and finish(deltas) == ["length", "stop"]


def test_continuation_that_repeats_the_text_so_far_is_not_doubled():
    parser = ChatGPTStream()
    first = parser.feed(
        assistant("a1", ["Cut"], "finished_successfully", metadata={"finish_details": {"type": "max_tokens"}})
    )
    first += parser.feed(b"[DONE]")
    parser.resume()
    payloads = [
        assistant("a1", ["Cut"]),
        assistant("a1", ["Cut short"]),
        assistant("a1", ["Cut short."], end_turn=True),
    ]
    deltas = first + [d for p in [*payloads, b"[DONE]"] for d in parser.feed(p)]
    assert text(deltas) == "Cut short." and finish(deltas) == ["length", "stop"]


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_finish_reasons(v1: bool):
    assert finish(run(served("maxtokens", v1=v1))[0]) == ["length"]
    assert finish(run(served("moderate", v1=v1))[0]) == ["content_filter"]
    assert finish(run(served(v1=v1, history=False))[0]) == ["stop"]


def test_moderation_that_does_not_block_changes_nothing():
    verdict = {"type": "moderation", "moderation_response": {"flagged": True, "blocked": False}}
    deltas, _ = run([assistant("a1", ["ok"], end_turn=True), verdict, b"[DONE]"])
    assert text(deltas) == "ok" and finish(deltas) == ["stop"]


def test_blocked_moderation_stops_further_text():
    verdict = {"type": "moderation", "moderation_response": {"flagged": True, "blocked": True}}
    deltas, _ = run([assistant("a1", ["Some"]), verdict, assistant("a1", ["Some more"]), b"[DONE]"])
    assert text(deltas) == "Some" and finish(deltas) == ["content_filter"]


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_in_stream_error_raises(v1: bool):
    with pytest.raises(StreamError, match="unusual activity"):
        run(served(scenario="err", v1=v1))


def test_error_inside_a_v1_root_raises():
    with pytest.raises(StreamError, match="went wrong"):
        run([b'"v1"', {"v": {"message": None, "error": {"message": "Something went wrong"}}, "c": 0}])


def test_stream_cut_before_the_answer_finished_raises():
    payloads = served()[:6]
    deltas, parser = run(payloads)
    assert text(deltas)
    with pytest.raises(StreamError, match="before the answer was complete"):
        parser.end()


@pytest.mark.parametrize("v1", [True, False], ids=["v1", "legacy"])
def test_stream_handoff_then_done_is_a_failure_never_a_cut_stop(v1: bool):
    parser, shown = ChatGPTStream(), []
    with pytest.raises(StreamError, match="stream_handoff"):
        for payload in served(scenario="handoff", v1=v1):
            shown += parser.feed(payload)
    assert text(shown) == "".join(fake.words(fake.ANSWER)[:3]) and not finish(shown)


def test_done_before_the_answer_finished_raises():
    with pytest.raises(StreamError, match="before the answer was complete"):
        run([assistant("a1", ["Half an ans"]), b"[DONE]"])
    image = {
        "message": {
            "id": "i1",
            "author": {"role": "tool", "name": "t2uay3k.sj1i4kz"},
            "content": fake.content("image", "", "sediment://file_00ab"),
            "status": "finished_successfully",
        }
    }
    assert finish(run([image, b"[DONE]"])[0]) == ["stop"]  # 4o image generation ends on its image
    with pytest.raises(StreamError, match="before the answer was complete"):
        run([image, assistant("a1", ["Here is your"]), b"[DONE]"])  # but not while its caption is cut


def test_finished_answer_without_done_still_finishes():
    deltas, _ = run(served()[:-1], end=True)
    assert text(deltas) == fake.ANSWER and finish(deltas) == ["stop"]


def test_junk_keepalives_and_data_after_done_are_ignored():
    payloads = [b"", b"not json", b"[1, 2]", b'"v1"', *served()[2:], json.dumps(assistant("z", ["late"])).encode()]
    deltas, _ = run(payloads)
    assert text(deltas) == fake.ANSWER and finish(deltas) == ["stop"]


def test_hidden_and_non_assistant_messages_are_skipped():
    hidden = assistant("h", ["secret context"], metadata={"is_visually_hidden_from_conversation": True})
    system = {
        "message": {"id": "s", "author": {"role": "system"}, "content": {"content_type": "text", "parts": ["sys"]}}
    }
    output = {"content_type": "execution_output", "text": "42"}
    python = {"message": {"id": "t", "author": {"role": "tool", "name": "python"}, "content": output}}
    deltas, _ = run([hidden, system, python, assistant("a", ["shown"], end_turn=True)], end=True)
    assert text(deltas) == "shown" and reasoning(deltas) == ""
