"""The real `openai` SDK as the tests' client of a gateway.

A client made with the SDK's defaults loads the CA bundle into a TLS context of its own (about 35 ms of CPU), and the
suite makes hundreds of clients: here they share one context. Each client still opens its own connections.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai

TLS = httpx.create_ssl_context()


def client(url: str, api_key: str = "test-code", **options: Any) -> openai.OpenAI:
    """An SDK client of the gateway at `url` (its origin), without retries: a test sees every failure."""
    http = openai.DefaultHttpxClient(verify=TLS)
    return openai.OpenAI(base_url=url + "/v1", api_key=api_key, max_retries=0, http_client=http, **options)


def async_client(url: str, api_key: str = "test-code", **options: Any) -> openai.AsyncOpenAI:
    http = openai.DefaultAsyncHttpxClient(verify=TLS)
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key=api_key, max_retries=0, http_client=http, **options)
