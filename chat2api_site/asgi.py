"""ASGI entry point. API routes are served by a lean Django handler of their own.

The admin and the web page need sessions, CSRF and messages; `/v1/...` needs none of them, and each
`MiddlewareMixin` costs a thread hop per request, so the API gets a handler without the middleware
stack. That handler also drops the rest of Django's per-request thread work, which on the API path
buys nothing:

- Django enters a fresh `ThreadSensitiveContext` per request, so the first thread-sensitive call of
  every request starts a new one-thread executor (and a thread to join it afterwards). The API handler
  enters a context bound to one executor shared by all its requests instead (asgiref >= 3.13). A
  task that a request starts and leaves running must not make thread-sensitive calls after the
  request ends (asgiref raises); the pool's watcher and database calls use `thread_sensitive=False`.
- `request_started` and `request_finished` are dispatched without the database receivers
  (`reset_queries`, `close_old_connections`): the API never opens a connection on a request's
  thread (the credential pool reads the database on worker threads and closes stale connections
  there itself), so they have nothing to do and each would cost a thread hop. Django's own
  context-local receivers run inline; any other synchronous receiver still runs on the shared thread.
- The response is closed inline (its only resource is the request's body file) rather than via
  `sync_to_async`; a body that arrives in one message is not copied into a spooled file; and the
  client's disconnect is watched by one task that cancels the request's task, instead of two tasks
  and `asyncio.wait`.
- An unknown path or an exception no view handled answers in the OpenAI error shape (a JSON 404, a
  500 with a request id, a 503 when Redis is unreachable) instead of Django's HTML pages.

Every path, API or not, gets the body limit before its body is read (`limits.py`; under daphne, whose
Twisted layer buffers a whole body before the application runs, `daphne_limits.py`, loaded only there:
Twisted and its TLS stack cost any other server's process about 18 MB, as channels' router would for a
one-line dispatch).

Behaviour is Django's otherwise: the same request object, URL resolution, views, response encoding;
a client that hangs up cancels the view or the streaming response.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat2api_site.settings")

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.asgi import get_asgi_application
from django.core.cache import close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, reset_queries
from django.dispatch import Signal
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix

site = get_asgi_application()

# Receivers with nothing to do for an API request (no database connection on the request's thread).
SKIPPED_RECEIVERS = frozenset({reset_queries, close_old_connections})
# Django's receivers that only reset per-context state: cheap and non-blocking, so no thread hop.
INLINE_RECEIVERS = frozenset({close_caches, reset_urlconf})


async def send_signal(signal: Signal, sender: type, **named) -> None:
    """`signal.asend()` minus the skipped receivers, with the inline ones called on the event loop."""
    sync_receivers, async_receivers = signal._live_receivers(sender)  # as asend() does (Django 5.x)
    hop = []
    for receiver in sync_receivers:
        if receiver in INLINE_RECEIVERS:
            receiver(signal=signal, sender=sender, **named)
        elif receiver not in SKIPPED_RECEIVERS:
            hop.append(receiver)
    if hop:

        def call_all() -> None:
            for receiver in hop:
                receiver(signal=signal, sender=sender, **named)

        await sync_to_async(call_all)()
    if async_receivers:
        await asyncio.gather(*(receiver(signal=signal, sender=sender, **named) for receiver in async_receivers))


class APIHandler(ASGIHandler):
    """Django's request handling with an empty middleware list and no per-request threads."""

    def __init__(self) -> None:
        super().__init__()
        # Thread-sensitive work of every API request (rare: error paths, third-party receivers).
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-sync")

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Callable[..., Any]] = []
        self._template_response_middleware: list[Callable[..., Any]] = []
        self._exception_middleware: list[Callable[..., Any]] = []
        self._middleware_chain = self._get_response_or_error

    async def _get_response_or_error(self, request: HttpRequest) -> HttpResponseBase:
        """Django's `convert_exception_to_response` for the API: an unknown path (Django: an HTML 404) or an
        unexpected exception (an HTML 500) answers in the OpenAI error shape, with a request id."""
        try:
            return await self._get_response_async(request)
        except Exception as exc:  # as Django's converter does
            return unexpected(request, exc)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        async with ThreadSensitiveContext(executor=self.executor):
            await self.handle(scope, receive, send)

    async def read_body(self, receive):
        """Django's, except that a body arriving in one message (nearly all) skips the spooled file."""
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted()
        if not message.get("more_body", False):
            return io.BytesIO(message.get("body", b""))
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115
        while True:
            body_file.write(message.get("body", b""))
            if not message.get("more_body", False):
                break
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
        body_file.seek(0)
        return body_file

    async def handle(self, scope, receive, send) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await send_signal(signals.request_started, self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await self.close_response(error_response)
            return

        # One watcher task cancels this one if the client hangs up before the response is sent; a
        # streaming response then closes its iterator, which closes the upstream request.
        task = asyncio.current_task()
        assert task is not None, "a request is served in a task"
        sent = aborted = False

        async def watch_disconnect() -> None:
            nonlocal aborted
            message = await receive()
            if message["type"] == "http.disconnect" and not sent:
                aborted = True
                task.cancel()

        watcher = asyncio.create_task(watch_disconnect())
        response = None
        try:
            response = await self.run_get_response(request)
            await self.send_response(response, send)
            sent = True
        except asyncio.CancelledError:
            if not aborted:
                raise  # the server is cancelling the request: not ours to swallow
            task.uncancel()
        finally:
            watcher.cancel()
            if response is not None:  # however the sending ended: a streamed answer's closer frees its slot
                close_resources(response)
        await send_signal(signals.request_finished, getattr(response, "_handler_class", self.__class__))
        body_file.close()

    async def close_response(self, response) -> None:
        """`response.close()` with `request_finished` sent through `send_signal`."""
        close_resources(response)
        await send_signal(signals.request_finished, getattr(response, "_handler_class", self.__class__))


def close_resources(response) -> None:
    """`response.close()` without its signal; the closers run inline (the API's do not block)."""
    for closer in response._resource_closers:
        with contextlib.suppress(Exception):  # as HttpResponseBase.close() does
            closer()
    response._resource_closers.clear()
    response.closed = True


from chat2api_site import limits, logs  # noqa: E402
from chat2api_site.urls import API_ROOT  # noqa: E402
from openai_compat.errors import unexpected  # noqa: E402
from tokens import usage  # noqa: E402

if "daphne.server" in sys.modules:  # served by daphne: Twisted is loaded already (elsewhere it costs ~18 MB)
    from chat2api_site import daphne_limits

    daphne_limits.install()
logs.install()

api = APIHandler()


async def application(scope, receive, send) -> None:
    if scope["type"] != "http":  # lifespan: the server goes on without it
        raise ValueError(f"No application configured for scope type {scope['type']!r}")
    length = limits.declared_length(scope)
    if length is not None and length > settings.MAX_REQUEST_BYTES:
        await limits.refuse(send)
        return
    if length is None:
        receive = limits.limited(receive, send)
    handler = api if scope["path"].startswith(API_ROOT) else site
    await handler(scope, receive, send)


atexit.register(usage.flush_at_exit)  # a server stopping gracefully writes the requests it has not written yet
