"""Which credential did the caller present, however its SDK sends it.

- ``Authorization: Bearer <key>``: openai SDK, and the anthropic SDK's ``auth_token``;
- ``x-api-key``: anthropic SDK;
- ``api-key``: Azure OpenAI;
- ``x-goog-api-key`` or the ``?key=`` query parameter: Gemini (google-genai and REST).

The gateway reads the kakin key from here, and sends upstream only the provider key it
holds itself (``auth_headers``), never the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Credential:
    value: str
    source: str  # "authorization", "x-api-key", "api-key", "x-goog-api-key" or "query:key"


_HEADERS = ("x-api-key", "api-key", "x-goog-api-key")


def extract_credential(
    headers: Mapping[str, str], query: Mapping[str, str] | None = None
) -> Credential | None:
    """The presented key, or None. ``headers`` may use any letter case."""
    lowered = {k.lower(): v for k, v in headers.items()} if not _is_lower(headers) else headers
    auth = lowered.get("authorization", "").strip()
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return Credential(token.strip(), "authorization")
    for name in _HEADERS:
        value = lowered.get(name, "").strip()
        if value:
            return Credential(value, name)
    if query:
        value = (query.get("key") or "").strip()
        if value:
            return Credential(value, "query:key")
    return None


def _is_lower(headers: Mapping[str, str]) -> bool:
    # Starlette/ASGI headers are already lower-case; avoid copying them.
    return type(headers).__name__ == "Headers"


def auth_headers(api: str, key: str) -> dict[str, str]:
    """Headers carrying the provider's own key upstream."""
    if api == "anthropic":
        return {"x-api-key": key}
    if api == "google":
        return {"x-goog-api-key": key}
    if api == "azure":
        return {"api-key": key}
    return {"authorization": f"Bearer {key}"}
