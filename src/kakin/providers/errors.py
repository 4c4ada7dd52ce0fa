"""Errors in each provider's own JSON shape, so SDKs raise their usual typed exceptions.

- OpenAI / Azure: ``{"error": {"message", "type", "param", "code"}}``
- Anthropic: ``{"type": "error", "error": {"type", "message"}}`` (and, inside a stream,
  an ``event: error`` SSE event with the same body)
- Gemini: ``{"error": {"code", "message", "status"}}``

SDKs pick the exception class from the HTTP status (429 → RateLimitError, 401 →
AuthenticationError …); the body's type fields follow each provider's vocabulary.
"""

from __future__ import annotations

from typing import Any

import orjson

from kakin.errors import KakinError

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}
_OPENAI_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_ANTHROPIC_KINDS = frozenset(_ANTHROPIC_TYPES.values())
_GOOGLE_KINDS = frozenset(_GOOGLE_STATUS.values()) | {
    "OK",
    "UNKNOWN",
    "ALREADY_EXISTS",
    "OUT_OF_RANGE",
    "DATA_LOSS",
}

CONTENT_TYPE = "application/json"


def error_body(
    api: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The error document for ``api`` ("openai", "azure", "anthropic", "google").

    ``code`` is OpenAI's ``code`` field; for Anthropic and Gemini it is used only when it is
    one of their own error types / canonical statuses, else the status decides. ``kind`` is
    OpenAI's ``type`` when more precise than the status's usual one."""
    if api == "anthropic":
        # Only Anthropic's own error types go in "type"; a kakin code would confuse clients.
        default = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        error_type = code if code in _ANTHROPIC_KINDS else default
        return {"type": "error", "error": {"type": error_type, "message": message}}
    if api == "google":
        canonical = code if code in _GOOGLE_KINDS else _google_status(status)
        return {"error": {"code": status, "message": message, "status": canonical}}
    kind = kind or _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "error": {"message": message, "type": kind, "param": param, "code": code or _OPENAI_CODES.get(status)}
    }


def _google_status(status: int) -> str:
    return _GOOGLE_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


def error_response(
    api: str,
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    kind: str | None = None,
) -> bytes:
    """``error_body`` serialised: the response body to send with ``status``."""
    return orjson.dumps(error_body(api, status, message, code=code, param=param, kind=kind))


def error_for(api: str, error: KakinError) -> tuple[int, bytes]:
    """(status, body) for a kakin error, in ``api``'s shape; InvalidInput is a 400 there,
    since providers answer malformed requests with 400, and SDKs expect it."""
    status = 400 if error.status == 422 else error.status
    code = None if api in ("anthropic", "google") else error.code
    return status, error_response(api, status, error.message, code=code, kind=error.kind)


def stream_error_event(api: str, status: int, message: str, *, code: str | None = None) -> bytes:
    """An error to send inside an already-started SSE stream (``code`` as in ``error_body``)."""
    body = orjson.dumps(error_body(api, status, message, code=code))
    if api == "anthropic":
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + body + b"\n\n"
