"""ASGI entry point. API routes are served by a Django handler without the middleware stack.

The admin and the web page need sessions, CSRF and messages; `/v1/...` needs none of them, and each
`MiddlewareMixin` costs a thread hop per request, so the API gets a handler of its own.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat2api_site.settings")

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

site = get_asgi_application()


class APIHandler(ASGIHandler):
    """The same request handling as Django's, with an empty middleware list."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)


from chat2api_site.urls import API_ROOT  # noqa: E402

api = APIHandler()


async def http(scope, receive, send) -> None:
    handler = api if scope["path"].startswith(API_ROOT) else site
    await handler(scope, receive, send)


application = ProtocolTypeRouter({"http": http})
