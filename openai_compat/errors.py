"""The one error shape of the API: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import logging
import sys

import orjson
from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from common.logs import bind_request_id

log = logging.getLogger(__name__)


class APIError(Exception):
    """An error the client must see as it is; raise it anywhere below a view."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_response(err: APIError) -> HttpResponse:
    response = HttpResponse(orjson.dumps(err.body()), status=err.status, content_type="application/json")
    for name, value in err.headers.items():
        response[name] = value
    return response


def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    """The answer to an exception that no code below the view turned into an `APIError`.

    Django's own answers would be HTML pages; an API client gets the OpenAI shape instead. A server fault
    is logged here, once, under the request id that the client sees in the message and `x-request-id`.
    """
    request_id = getattr(request, "request_id", "") or bind_request_id(request.headers.get("X-Request-Id"))
    response = error_response(_error_for(request, exc, request_id))
    response["x-request-id"] = request_id
    response._has_been_logged = True  # Django would log every 4xx/5xx again, without the request id
    return response


def _error_for(request: HttpRequest, exc: Exception, request_id: str) -> APIError:
    if isinstance(exc, Http404):
        return APIError(404, f"Invalid URL ({request.method} {request.path})")
    if isinstance(exc, SuspiciousOperation | BadRequest):
        return APIError(400, "The request could not be read.")
    if isinstance(exc, PermissionDenied):
        return APIError(403, "You may not do this.", code="permission_denied")
    return fault(exc, request_id, f"{request.method} {request.path}")


def fault(exc: Exception, request_id: str, where: str) -> APIError:
    """A server-side failure (Redis unavailable, or a bug) as the client sees it, logged once under `request_id`;
    also the error event of a stream that such a failure ends after its headers went out."""
    line = {"request_id": request_id}  # the log line's id is the one in the client's message
    if _redis_unavailable(exc):
        log.error("Redis unavailable: %s", exc, extra=line)
        message = f"The server is temporarily unavailable; retry shortly (request ID {request_id})."
        return APIError(503, message, "server_error", code="service_unavailable", headers={"Retry-After": "1"})
    log.error("%s failed", where, exc_info=exc, extra=line)
    message = f"The server had an error while processing your request (request ID {request_id})."
    return APIError(500, message, "server_error")


def _redis_unavailable(exc: Exception) -> bool:
    """Redis did not answer (down, or no free connection within REDIS_TIMEOUT): the server cannot serve now.

    Looked up, not imported: a process without REDIS_URL never loads redis-py, so it raised none of its errors.
    """
    redis = sys.modules.get("redis")
    return redis is not None and isinstance(exc, redis.ConnectionError | redis.TimeoutError)


def invalid(param: str | None, message: str, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str) -> APIError:
    message = f"The model '{model}' does not exist or you do not have access to it."
    return APIError(404, message, param="model", code="model_not_found")
