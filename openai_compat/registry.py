"""Which adapter serves each credential kind: the one place where the pool's kinds meet the adapters.

The adapters (`openai_compat.upstreams`) know nothing of the pool; a new kind is one line here.
"""

from __future__ import annotations

from openai_compat import files
from openai_compat.upstreams.base import Upstream
from openai_compat.upstreams.chatgpt_web import ChatGPTWeb
from openai_compat.upstreams.codex import Codex
from openai_compat.upstreams.openai import OpenAICompatible
from tokens.models import Kind

UPSTREAMS: dict[str, Upstream] = {
    Kind.CHATGPT: ChatGPTWeb(links=files.links),
    Kind.OPENAI: OpenAICompatible(),
    Kind.CODEX: Codex(),
}
