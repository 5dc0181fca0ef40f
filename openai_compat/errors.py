"""The one error shape of the API: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import orjson
from django.http import HttpResponse


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


def invalid(param: str | None, message: str, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def model_not_found(model: str) -> APIError:
    return APIError(
        404, f"The model '{model}' does not exist or is not served here.", param="model", code="model_not_found"
    )
