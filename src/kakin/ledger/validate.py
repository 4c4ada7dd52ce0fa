"""Input checks shared by every ledger operation.

Each check either returns the clean value or raises :class:`~kakin.errors.InvalidInput`
naming the input, the rule and how to fix it, before anything is written."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Context, Decimal, Inexact
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import phonenumbers

from kakin.errors import InvalidInput
from kakin.ledger.statements import JsonText
from kakin.money import MoneyError, decimal_str, from_pico, to_decimal, to_pico

# Storage is signed 64-bit picodollars (≈ $9.2 million). One amount is capped well below
# that so that counters summing many of them stay exact and "absurd" input is refused.
MAX_AMOUNT = Decimal("1000000")
MAX_LIMIT = Decimal("9000000")
MAX_TOKENS = 10**12
MAX_HOLD = timedelta(days=7)
# Scales an amount to picodollars, refusing to round (cheaper than reading its exponent).
_SCALING = Context(prec=60, traps=[Inexact])
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]+$")


def amount_pico(
    value: object, what: str, *, maximum: Decimal = MAX_AMOUNT, positive: bool = False, exact: bool = False
) -> int:
    """A USD amount → picodollars; negative, non-numeric or beyond ``maximum`` is refused.
    ``exact`` (amounts a person types: grants, payments, refunds, limits) also refuses one
    finer than a picodollar, which would otherwise be rounded to it."""
    if type(value) is Decimal and not value and not positive:  # zero: most savings and discounts
        return 0
    if type(value) is Decimal and value.is_finite() and 0 < value <= maximum:
        try:
            scaled = value.scaleb(12, _SCALING)
        except Inexact:  # more digits than any amount has: judged below
            pass
        else:
            if scaled == scaled.to_integral_value():  # a whole number of picodollars: exact
                return int(scaled)
    try:
        amount = to_decimal(value, what=what)
    except MoneyError as exc:
        raise InvalidInput(f"{exc}; give USD as a decimal string such as '0.25'") from None
    if amount > maximum:
        raise InvalidInput(f"{what} ${amount} is above the ${maximum:,} kakin accepts for one amount")
    if positive and amount == 0:
        raise InvalidInput(f"{what} must be greater than zero")
    pico = to_pico(amount)
    if exact and from_pico(pico) != amount:
        raise InvalidInput(
            f"{what} {decimal_str(amount)} has more than 12 decimal places; kakin keeps USD to the "
            "picodollar (0.000000000001)"
        )
    return pico


def tokens(value: object, what: str = "tokens") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be a whole number, got {value!r}")
    if value < 0:
        raise InvalidInput(f"{what} must not be negative, got {value}")
    if value > MAX_TOKENS:
        raise InvalidInput(f"{what} {value:,} is above the {MAX_TOKENS:,} kakin accepts")
    return value


def text(value: object, what: str, *, max_length: int = 200, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, got {type(value).__name__}")
    cleaned = value.strip()
    if not cleaned:
        if allow_empty:
            return ""
        raise InvalidInput(f"{what} must not be empty")
    if len(cleaned) > max_length:
        raise InvalidInput(f"{what} is {len(cleaned)} characters long; the limit is {max_length}")
    # Printable ASCII (nearly all text) has no control character; anything else is matched.
    if not (cleaned.isascii() and cleaned.isprintable()) and not _TEXT.match(cleaned):
        raise InvalidInput(f"{what} must not contain control characters")
    return cleaned


def timezone(value: object) -> str:
    name = text(value, "timezone", max_length=64)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"timezone {name!r} is not an IANA timezone name; use one such as 'Asia/Tokyo' or 'UTC'"
        ) from None
    return name


def currency(value: object) -> str:
    code = text(value, "currency", max_length=40).upper()
    if not (len(code) == 3 and code.isascii() and code.isalpha()):
        raise InvalidInput(f"currency {value!r} must be a 3-letter ISO 4217 code such as USD or JPY")
    return code


def phone(value: object) -> str:
    """A phone number in E.164 (``+819012345678``). It must carry its country code."""
    raw = text(value, "phone number", max_length=40)
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidInput(
            f"phone number {raw!r} cannot be read; write it with its country code, e.g. +81 90-1234-5678"
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(f"phone number {raw!r} is not a valid number for its country code")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def moment(value: object, what: str) -> datetime:
    """A timezone-aware datetime, or an ISO 8601 string with an offset (``Z`` allowed)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(
                f"{what} {value!r} is not an ISO 8601 date-time such as 2025-05-01T00:00:00Z"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a date-time, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{what} {value.isoformat()} has no timezone; add one, e.g. 2025-05-01T00:00:00Z")
    if not (1970 <= value.year <= 9000):
        raise InvalidInput(f"{what} {value.isoformat()} is outside the years 1970–9000")
    return value


def duration(value: object, what: str, *, maximum: timedelta | None = None) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, timedelta | int):
        raise InvalidInput(f"{what} must be a duration (timedelta or seconds), got {value!r}")
    span = timedelta(seconds=value) if isinstance(value, int) else value
    if span <= timedelta(0):
        raise InvalidInput(f"{what} must be positive, got {span}")
    if maximum is not None and span > maximum:
        raise InvalidInput(f"{what} {span} is longer than the {maximum} allowed")
    return span


def json_value(value: Any, what: str) -> Any:
    """Anything JSON can hold (Decimals become strings); refused otherwise."""
    try:
        return json.loads(json.dumps(value, default=_decimal_default))
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be JSON-serialisable") from None


def json_text(value: Any, what: str) -> JsonText:
    """``value`` serialised once, for storing as it is: anything JSON can hold (Decimals
    become strings), or a ``str`` that is already a JSON document (checked by parsing)."""
    if isinstance(value, str):
        try:
            orjson.loads(value)  # strict JSON, fast; what it refuses is judged by json, as always
        except orjson.JSONDecodeError:
            try:
                json.loads(value)
            except ValueError:
                raise InvalidInput(f"{what} given as text must be a JSON document: {value[:60]!r}") from None
        return JsonText(value)
    try:
        return JsonText(json.dumps(value, default=_decimal_default, allow_nan=False))
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be JSON-serialisable") from None


def json_document(value: Any, what: str) -> tuple[JsonText, Any]:
    """:func:`json_text`, with what the text holds when it came as text: parsed to check it,
    and handed on to a reader that would parse it again (None when it came otherwise)."""
    if type(value) is str:
        try:
            return JsonText(value), orjson.loads(value)
        except orjson.JSONDecodeError:
            pass  # judged by json_text
    return json_text(value, what), None


def _decimal_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def usd(pico: int) -> str:
    """Picodollars as a message shows them: ``$0.0125`` (exact, no trailing zeros)."""
    return f"${decimal_str(from_pico(pico))}"
