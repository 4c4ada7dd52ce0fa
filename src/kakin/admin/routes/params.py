"""Path, query and header parameters shared by the routes, with their documented rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query

from kakin.admin.fields import TEXT_PATTERN, Moment
from kakin.errors import InvalidInput


def _ident(description: str, example: str) -> object:
    return Path(description=description, pattern=TEXT_PATTERN, max_length=200, examples=[example])


OrgRef = Annotated[str, _ident("organisation id (org_…) or its name", "acme")]
ProjectId = Annotated[str, _ident("project id (prj_…)", "prj_01hx3k9v2a7bq4c8m0zp")]
KeyId = Annotated[str, _ident("key id (key_…), never the key itself", "key_01hx3k9v2a7bq4c8m0zp")]
GrantId = Annotated[str, _ident("grant id (grt_…)", "grt_01hx3k9v2a7bq4c8m0zp")]
ReservationId = Annotated[str, _ident("reservation id (res_…)", "res_01hx3k9v2a7bq4c8m0zp")]
BudgetId = Annotated[str, _ident("budget id (bud_…)", "bud_01hx3k9v2a7bq4c8m0zp")]
ChannelId = Annotated[str, _ident("alert channel id (ach_…)", "ach_01hx3k9v2a7bq4c8m0zp")]

Since = Annotated[
    Moment | None, Query(description="only from this time on (inclusive), ISO 8601 with timezone")
]
Until = Annotated[
    Moment | None, Query(description="only before this time (exclusive), ISO 8601 with timezone")
]
Limit = Annotated[int, Query(ge=1, le=100_000, description="at most this many rows, oldest first")]
FilterText = Annotated[str | None, Query(pattern=TEXT_PATTERN, max_length=200, description="exact match")]
IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=TEXT_PATTERN,
        max_length=200,
        description="makes the call safe to retry: the same key and parameters return the first result; "
        "the same key with other parameters is refused with 409",
    ),
]


def idempotency_key(header: str | None, body: str | None) -> str:
    """The one idempotency key of a request, from the header or the body field."""
    if header is not None and body is not None and header.strip() != body.strip():
        raise InvalidInput(
            f"the Idempotency-Key header ({header!r}) and the body's idempotency_key ({body!r}) differ; "
            "give one of them, or the same value in both"
        )
    key = header if header is not None else body
    if key is None or not key.strip():
        raise InvalidInput(
            "this call needs an idempotency key so a retry cannot apply it twice: send an Idempotency-Key "
            "header or an idempotency_key field (any unique text, e.g. a UUID)"
        )
    return key.strip()
