"""Free operations with no request body worth reading (listing models, reading or
deleting a Gemini cache entry): forwarded as they are, never billed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kakin.pricing import Usage
from kakin.providers.adapter import Adapter
from kakin.providers.endpoints import Endpoint
from kakin.providers.request import ParsedRequest


def parse(
    endpoint: Endpoint,
    body: bytes,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    model_map: Mapping[str, str],
) -> ParsedRequest:
    return ParsedRequest(endpoint=endpoint, model="", path_params=path_params, query=query, body=body)


def rewrite(parsed: ParsedRequest, model: str | None) -> dict[str, Any] | None:
    return None


def usage(parsed: ParsedRequest, doc: Any) -> Usage | None:
    return Usage(requests=1)


ADAPTER = Adapter(parse=parse, rewrite=rewrite, usage=usage)
