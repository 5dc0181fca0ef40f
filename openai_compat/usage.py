"""Token counts for replies whose upstream does not report usage, with the tokenizer of the model's family.

o200k_base for gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and the o-series (and anything newer or unknown);
cl100k_base for gpt-4 and gpt-3.5. Counted with tiktoken's public API; its vocabularies ship gzipped in
`vocab/` and are unpacked, on first count, where tiktoken looks before it would download them (its cache,
`TIKTOKEN_CACHE_DIR`, file named by the sha1 of the URL); tiktoken checks their sha256 itself. Nothing is
downloaded. The first count in a process imports tiktoken (0.03 s and 1.3 MB, which a worker whose upstreams
report usage never spends), unpacks the file (0.05 s) and loads it: o200k 72 MB and 0.5 s (0.7-1.2 s measured
on a busy 2-CPU machine), cl100k 33 MB and 0.6 s more.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import uuid
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from openai_compat import catalog
from openai_compat.schema import ChatRequest, text_of

if TYPE_CHECKING:
    import tiktoken

O200K, CL100K = "o200k_base", "cl100k_base"
CL100K_PREFIXES = ("gpt-3.5", "gpt-35", "text-davinci", "gpt-4")
O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4-1", "gpt-4.5", "gpt-4-5", "chatgpt-4o")
# The chat format's framing (OpenAI's published recipe): each message costs its role and content plus
# three tokens, a name one more, and every reply is primed with three.
PER_MESSAGE, PER_NAME, REPLY_PRIMING = 3, 1, 3
VOCAB_DIR = Path(__file__).resolve().parent / "vocab"
VOCAB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"  # what tiktoken would fetch


def encoding_for(model: str) -> str:
    name = model.lower()
    if name.startswith(CL100K_PREFIXES) and not name.startswith(O200K_PREFIXES) and not catalog.gizmo_id(model):
        return CL100K
    return O200K


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


@cache
def _cache_dir() -> Path:
    """The operator's TIKTOKEN_CACHE_DIR, else var/tiktoken (a temp folder when var/ is read-only).

    An empty TIKTOKEN_CACHE_DIR would make tiktoken download on every load, so it counts as unset.
    """
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        folder = settings.VAR_DIR / "tiktoken"
        fallback = Path(tempfile.gettempdir()) / "chat2api-tiktoken"
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder if _writable(folder) else fallback)
    return Path(os.environ["TIKTOKEN_CACHE_DIR"])


def _unpack(encoding: str, folder: Path) -> None:
    """Put the shipped vocabulary where tiktoken looks first; a damaged copy is replaced, as tiktoken would
    otherwise delete it and download."""
    vocab = gzip.decompress((VOCAB_DIR / f"{encoding}.tiktoken.gz").read_bytes())
    target = folder / hashlib.sha1(VOCAB_URL.format(encoding).encode()).hexdigest()
    if target.exists() and target.read_bytes() == vocab:
        return
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{target.name}.{uuid.uuid4().hex}.tmp"
    partial.write_bytes(vocab)
    partial.replace(target)  # atomic: a worker loading at the same moment never reads half a file


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    import tiktoken  # here: a worker whose upstreams report usage never loads it

    _unpack(name, _cache_dir())
    return tiktoken.get_encoding(name)


def count_tokens(text: str, model: str = "gpt-4o") -> int:
    """The number of tokens `text` encodes to (special-token text counts as plain text, as a prompt's does)."""
    return len(_encoding(encoding_for(model)).encode_ordinary(text)) if text else 0


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
