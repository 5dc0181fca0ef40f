"""Which model names the gateway serves, and the upstream model each name maps to.

ChatGPT accounts: one table, overridable entry by entry with the `MODEL_MAP` setting (a JSON object; the
key `*` sets a fallback slug for names the table does not know). Codex accounts serve `CODEX_MODELS`,
and every `MODEL_MAP` name whose value is one of them (an alias: client name → served name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from django.conf import settings

DEFAULT_SLUG = "text-davinci-002-render-sha"  # the seed's default ("gpt-3.5")
GIZMO_SLUG = "gpt-4o"  # the model GPTs run on
GIZMO = re.compile(r"(?:gpt-4-gizmo-)?(g-[A-Za-z0-9][A-Za-z0-9_-]*)")

CHATGPT_MODELS: dict[str, str] = {
    "gpt-3.5-turbo": DEFAULT_SLUG,
    "gpt-4": "gpt-4",
    "gpt-4-mobile": "gpt-4-mobile",
    "gpt-4o": "gpt-4o",
    "gpt-4o-mini": "gpt-4o-mini",
    "gpt-4.5": "gpt-4-5",
    "gpt-4.1": "gpt-4-1",
    "gpt-4.1-mini": "gpt-4-1-mini",
    "o1": "o1",
    "o1-preview": "o1-preview",
    "o1-mini": "o1-mini",
    "o1-pro": "o1-pro",
    "o3": "o3",
    "o3-mini": "o3-mini",
    "o3-mini-high": "o3-mini-high",
    "o3-pro": "o3-pro",
    "o4-mini": "o4-mini",
    "o4-mini-high": "o4-mini-high",
    "gpt-5": "gpt-5",
    "gpt-5-thinking": "gpt-5-thinking",
    "gpt-5-mini": "gpt-5-mini",
    "gpt-5-pro": "gpt-5-pro",
    # 2025-26: the web slugs spell the version with a dash (`gpt-5-3` in the 2026 capture; `-instant`,
    # `-thinking` and `-pro` lanes in the model pickers of public clients), served under the API's names.
    **{f"gpt-5.{n}{lane}": f"gpt-5-{n}{lane}" for n in range(1, 7) for lane in ("", "-instant", "-thinking", "-pro")},
    "auto": "auto",
}
# `reasoning_effort` → the web body's `thinking_effort` (the picker's Light / Standard / Extended / Heavy).
THINKING_EFFORTS = {
    "none": "min",
    "minimal": "min",
    "low": "min",
    "medium": "standard",
    "high": "extended",
    "xhigh": "max",
}


@cache
def _table() -> dict[str, str]:
    return {**CHATGPT_MODELS, **settings.MODEL_MAP}


@cache
def _slugs() -> frozenset[str]:
    return frozenset(_table().values())


def chatgpt_slug(model: str) -> str | None:
    """The upstream slug for `model`, or None when a ChatGPT account cannot serve it.

    Exact names win, then a web slug itself (`gpt-5-3`); a dated or suffixed name (`gpt-4o-2024-08-06`) takes
    its longest known prefix; other `gpt-3.5…` names fall back to the seed's default; a GPT (`gpt-4-gizmo-g-…`,
    `g-…`) runs on gpt-4o.
    """
    table = _table()
    if model in table:
        return table[model]
    if model in _slugs():
        return model
    if gizmo_id(model):
        return GIZMO_SLUG
    prefixes = [name for name in table if model.startswith(name + "-")]
    if prefixes:
        return table[max(prefixes, key=len)]
    if model.startswith("gpt-3.5"):
        return DEFAULT_SLUG
    return table.get("*")


def gizmo_id(model: str) -> str | None:
    """The GPT id (`g-…`) a model name asks for, or None for an ordinary model."""
    match = GIZMO.fullmatch(model)
    return match.group(1) if match else None


def thinking_effort(reasoning_effort: object) -> str | None:
    """The web backend's `thinking_effort` for a request's `reasoning_effort`; None when it named none."""
    return THINKING_EFFORTS.get(reasoning_effort) if isinstance(reasoning_effort, str) else None


def chatgpt_model_names() -> list[str]:
    return [name for name in _table() if name != "*"]


def codex_slug(model: str) -> str | None:
    """The Codex model for `model`, or None when a Codex account cannot serve it: a `MODEL_MAP` alias of a
    Codex model first (as on ChatGPT, the map overrides), then the name itself, then the `*` alias."""
    served, aliases = settings.CODEX_MODELS, settings.MODEL_MAP
    for target in (aliases.get(model), model, aliases.get("*")):
        if target in served:
            return target
    return None


def codex_model_names() -> list[str]:
    """`CODEX_MODELS` and the `MODEL_MAP` names that alias one of them."""
    aliases = (name for name, target in settings.MODEL_MAP.items() if name != "*" and target in settings.CODEX_MODELS)
    return [*settings.CODEX_MODELS, *aliases]


def listed_models(names: Iterable[str], openai_models: Iterable[tuple[str, int]]) -> dict[str, int]:
    """What `/v1/models` shows, sorted, name → `created` (0 when no upstream said): `names` (those of the
    ChatGPT and Codex accounts in the pool), plus every key's (model, created)."""
    found = dict.fromkeys(names, 0)
    for name, created in openai_models:
        found[name] = max(found.get(name, 0), created)
    return dict(sorted(found.items()))
