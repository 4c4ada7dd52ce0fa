"""Field types shared by the admin API's request models.

Why custom types instead of pydantic's defaults: pydantic happily turns the JSON number
``0.1`` into a float and ``1700000000`` into a date-time. Money must never pass through a
float, and a date-time without a timezone is ambiguous, so amounts are decimal *strings* and
date-times are ISO 8601 strings with an offset. Each validator raises a message that names
the rule and shows a valid value; the OpenAPI document states the same rule (pattern,
format, length) so generated clients and fuzzers agree with the server.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

# Printable text: no control characters (they break logs, terminals and PostgreSQL).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
# USD with at most 7 integer digits and 12 decimals (a picodollar, the storage unit).
AMOUNT_PATTERN = r"^[0-9]{1,7}(\.[0-9]{1,12})?$"
_AMOUNT = re.compile(AMOUNT_PATTERN)
_TEXT = re.compile(TEXT_PATTERN)


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f"amounts are USD as a decimal string such as '12.50', not {type(value).__name__} {value!r}"
        )
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"amount must not be negative, got {value!r}")
    if not _AMOUNT.match(text):
        raise ValueError(
            f"amount {value[:40]!r} is not a USD decimal string such as '12.50' "
            "(digits, at most 7 before the point and 12 after it)"
        )
    return Decimal(text)


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"date-times are ISO 8601 strings such as 2025-05-01T00:00:00Z, not {value!r}")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{value[:60]!r} is not an ISO 8601 date-time such as 2025-05-01T00:00:00Z"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{value[:60]!r} has no timezone; add one, e.g. 2025-05-01T00:00:00Z")
    # The local year is checked before converting: 9999-12-31T23:00-05:00 has no UTC form.
    if not 1970 <= parsed.year <= 9000:
        raise ValueError(f"{value[:60]!r} is outside the years 1970–9000")
    return parsed.astimezone(UTC)


def _text(value: Any) -> Any:
    if value == "":
        raise ValueError("must not be empty")
    # Surrogates cannot be stored as UTF-8; refuse them with the other unprintables.
    if isinstance(value, str) and (not _TEXT.match(value) or _has_surrogate(value)):
        raise ValueError("must be printable text without control characters")
    return value


def _has_surrogate(value: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in value)


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["12.50"]}),
]
"""USD as a decimal string, e.g. "12.50"; never a JSON number."""

Moment = Annotated[
    datetime,
    BeforeValidator(_moment),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2025-05-01T00:00:00Z"]}),
]
"""An ISO 8601 date-time with a timezone; stored and returned in UTC."""


def text(max_length: int = 200, *, examples: list[str] | None = None, description: str = "") -> Any:
    """Printable text of 1..``max_length`` characters."""
    return Annotated[
        str,
        BeforeValidator(_text),
        Field(
            min_length=1,
            max_length=max_length,
            pattern=TEXT_PATTERN,
            examples=examples,
            description=description or None,
        ),
    ]


Name = text(200, examples=["acme"])
IdempotencyKey = text(
    200,
    examples=["grant-2025-05-welcome"],
    description="any unique text; a retry with the same key and parameters returns the first result",
)
