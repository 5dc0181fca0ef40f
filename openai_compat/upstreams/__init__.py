"""Upstream adapters, chosen by the credential's kind."""

from __future__ import annotations

from openai_compat.upstreams.base import Upstream
from openai_compat.upstreams.chatgpt_web import ChatGPTWeb
from openai_compat.upstreams.openai import OpenAICompatible
from tokens.models import Kind

UPSTREAMS: dict[str, Upstream] = {Kind.CHATGPT: ChatGPTWeb(), Kind.OPENAI: OpenAICompatible()}
