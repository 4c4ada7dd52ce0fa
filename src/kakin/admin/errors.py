"""One error shape for every failure the admin API answers with.

``{"error": {"type": "<code>", "message": "<what failed, which input, how to fix it>"}}``

kakin's own errors (:class:`kakin.errors.KakinError`) keep their HTTP ``status``, ``code``
and message; request validation failures become 422, unknown routes 404 and wrong methods
405 in the same shape, so a client needs one parser. :func:`declare` builds the
``responses=`` table each route puts in the OpenAPI document.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kakin.errors import KakinError

log = logging.getLogger("kakin.admin")


class ErrorDetail(BaseModel):
    type: str = Field(description="machine-readable error code", examples=["not_found"])
    message: str = Field(
        description="what failed, which input or limit, and how to fix it",
        examples=["no organisation with id or name 'acme' (see `kakin org list`)"],
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


# What each status means on this API, for the OpenAPI document.
_MEANING = {
    400: "Malformed request.",
    401: "Missing or wrong admin key (`Authorization: Bearer <KAKIN_ADMIN_KEY>`), or, for "
    "reservations, an unknown, revoked or expired virtual key in the scope.",
    402: "No credit left and no payment method on file, or a hard-capped budget or usage tier "
    "has no room for the amount.",
    403: "The scope is not allowed: a suspended key, a key or project outside the organisation, "
    "or a model the key may not use.",
    404: "An id or name in the path or body does not exist.",
    405: "The path exists but not with this method.",
    409: "Conflicts with what already happened (a duplicate name, an idempotency key reused with "
    "other parameters, a settled or voided reservation, a concurrent change). Nothing was written.",
    422: "Invalid input (malformed, negative or absurd amounts, bad dates, timezones, phone numbers "
    "or currencies). Nothing was written.",
    503: "The admin API is disabled because no admin key is configured (set KAKIN_ADMIN_KEY).",
}

ALWAYS = (401, 503)


def declare(*statuses: int, validation: bool = True) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry for a route that can fail with ``statuses``.

    Every route can answer 401 and 503 (admin key); routes with parameters or a body 422."""
    wanted = set(statuses) | set(ALWAYS) | ({422} if validation else set())
    return {
        status: {"model": ErrorResponse, "description": _MEANING.get(status, "Error.")}
        for status in sorted(wanted)
    }


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"type": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _kakin_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KakinError)
    return error_response(exc.status, exc.code, exc.message)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_request", describe_validation(exc.errors()))


def describe_validation(errors: Any) -> str:
    """pydantic's error list as one readable line: ``body.amount: amount must not be …``."""
    parts = []
    for error in list(errors)[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__")
        message = str(error.get("msg", "invalid value"))
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        if error.get("type") == "json_invalid":
            message = f"the body is not valid JSON ({error.get('ctx', {}).get('error', message)})"
        elif error.get("type") == "missing":
            message = "is required"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400:
        # FastAPI's answer to a body it cannot decode: invalid input like any other.
        return error_response(422, "invalid_request", "the body is not valid JSON text in UTF-8")
    if status == 404:
        message = f"no admin API route {request.method} {request.url.path}; see the OpenAPI document at openapi.json"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(status, _HTTP_CODES.get(status, "http_error"), message, dict(exc.headers or {}))


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("admin API request failed", exc_info=exc)
    return error_response(
        500, "internal_error", "the admin API failed unexpectedly; the server log has the details"
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(KakinError, _kakin_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
