"""A request's model is resolved once: each kind's upstream name, the credentials that can take it, their peers."""

from __future__ import annotations

from dataclasses import replace

from openai_compat import catalog, route
from openai_compat.route import Route
from tokens.pool import PooledCredential

CHATGPT = PooledCredential(1, "chatgpt")
CODEX = PooledCredential(2, "codex")
KEY = PooledCredential(3, "openai", models=frozenset({"gpt-5.5", "own-model"}))
ANY_KEY = PooledCredential(4, "openai")  # lists no models: serves any name
SNAPSHOT = (CHATGPT, CODEX, KEY, ANY_KEY)


def test_each_kind_names_the_model_its_own_way():
    gpt = Route("gpt-4o-2024-08-06")
    assert [gpt.slug(c) for c in SNAPSHOT] == ["gpt-4o", None, None, "gpt-4o-2024-08-06"]
    codex = Route("gpt-5.5")
    assert [codex.slug(c) for c in SNAPSHOT] == [catalog.chatgpt_slug("gpt-5.5"), "gpt-5.5", "gpt-5.5", "gpt-5.5"]


def test_a_kind_resolves_the_model_once_per_request(monkeypatch):
    asked: list[str] = []
    monkeypatch.setitem(route.SLUGS, "chatgpt", lambda model: asked.append(model) or "slug")
    accounts = tuple(PooledCredential(i, "chatgpt") for i in range(50))
    resolved = Route("gpt-4o")
    assert len(resolved.candidates(accounts)) == 50
    assert resolved.peers(accounts, accounts[0]) == list(range(1, 50))
    assert asked == ["gpt-4o"]


def test_tools_leave_out_the_kinds_that_cannot_call_them():
    assert Route("gpt-5.5", tools=True).candidates(SNAPSHOT) == [CODEX, KEY, ANY_KEY]
    chatgpt_only = Route("gpt-4o", tools=True)
    assert chatgpt_only.candidates((CHATGPT,)) == [] and chatgpt_only.served((CHATGPT,))


def test_candidates_follow_a_new_snapshot():
    resolved = Route("own-model")
    assert resolved.candidates(SNAPSHOT) == [KEY, ANY_KEY]
    assert resolved.candidates(SNAPSHOT) is resolved.candidates(SNAPSHOT)  # one list per snapshot
    reloaded = (CHATGPT, replace(KEY, models=frozenset({"other"})), ANY_KEY)
    assert resolved.candidates(reloaded) == [ANY_KEY]


def test_peers_are_the_others_that_serve_the_model_whatever_the_tools():
    assert Route("gpt-5.5", tools=True).peers(SNAPSHOT, CODEX) == [1, 3, 4]
    assert Route("own-model").peers(SNAPSHOT, KEY) == [4]


def test_a_model_no_kind_knows():
    assert not Route("no-such-model").known
    assert Route("gpt-5.5").known and Route("gpt-4o").known
