"""Views of the Responses API."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from openai_compat.auth import api_view
from openai_compat.responses import store
from openai_compat.services import Caller
from openai_compat.views import json_response


@api_view(("GET", "DELETE"))
async def retrieve_or_delete(request: HttpRequest, caller: Caller, response_id: str) -> HttpResponse:
    """A stored response of this caller, or its deletion; any other id is 404."""
    if request.method == "DELETE":
        return json_response(await store.delete(response_id, caller.scope))
    return json_response(await store.get(response_id, caller.scope))
