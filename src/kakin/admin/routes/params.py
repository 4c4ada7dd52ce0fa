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

# A report bound: a local date, or a date-time (local without an offset), in the years 1970–9000.
_YEAR = "(19[7-9][0-9]|[2-8][0-9]{3}|9000)"
DAY_PATTERN = rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}$"
BOUND_PATTERN = (
    rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)
From = Annotated[
    str | None,
    Query(
        alias="from",
        pattern=BOUND_PATTERN,
        description="first local day (YYYY-MM-DD) or instant, in the organisation's timezone unless it "
        "has an offset; default: the 1st of this local month",
        examples=["2025-05-01"],
    ),
]
To = Annotated[
    str | None,
    Query(
        alias="to",
        pattern=BOUND_PATTERN,
        description="the local day (YYYY-MM-DD) or instant after the last one (excluded); default: "
        "tomorrow, so today is included",
        examples=["2025-06-01"],
    ),
]
ProjectRef = Annotated[
    str | None, Query(pattern=TEXT_PATTERN, max_length=200, description="only this project (id or name)")
]
KeyRef = Annotated[
    str | None,
    Query(pattern=TEXT_PATTERN, max_length=200, description="only this key (id or public prefix)"),
]
Currency = Annotated[
    str | None,
    Query(
        pattern="^[A-Za-z]{3}$",
        description="also give costs in this currency (ISO code), at the rate from KAKIN_FX_<CODE> or "
        "kakin's labelled default; amounts stay USD",
        examples=["JPY"],
    ),
]
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
