"""Validation of the numbers people type into an estimate.

Estimates multiply everything together, so one absurd input (10¹⁵ requests a day, a 500 %
buffer) silently produces an absurd budget. Every figure is checked here against a range
that covers any real workload, and refused with a message that names the input, the limit
and the value. Numbers are read exactly: integers, decimal strings, ``Decimal``, percent
strings ("20%"), and floats only as the shortest decimal that prints them (what a TOML or
JSON file spelled), never their binary value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from kakin.errors import InvalidInput

ONE: Final = Decimal(1)
ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class Limit:
    """The accepted range of one input, with the unit used in messages."""

    low: Decimal
    high: Decimal
    percent: bool = False
    whole: bool = False


# Far above any real workload, far below where a typo lands.
REQUESTS_PER_DAY: Final = Limit(ZERO, Decimal(10**9), whole=False)
TOKENS_PER_REQUEST: Final = Limit(ZERO, Decimal(10**7), whole=True)
SHARE: Final = Limit(ZERO, ONE, percent=True)
BUFFER: Final = Limit(ZERO, ONE, percent=True)
RETRY_FACTOR: Final = Limit(ONE, Decimal(10))
PEAK_FACTOR: Final = Limit(ONE, Decimal(20))
DAYS_PER_MONTH: Final = Limit(ONE, Decimal(31))
IMAGES: Final = Limit(ONE, Decimal(10**8), whole=True)
ATTEMPTS: Final = Limit(ONE, Decimal(100))
PLAN_PRICE: Final = Limit(Decimal("0.01"), Decimal(10**7))
REQUESTS_PER_MONTH: Final = Limit(ZERO, Decimal(31 * 10**9))
TOKENS_PER_MONTH: Final = Limit(ZERO, Decimal(10**16))
DAILY_SPEND: Final = Limit(ZERO, Decimal(10**9))

CALENDAR_DAYS: Final = Decimal("30")
WORKING_DAYS: Final = Decimal("22")


def number(value: object, what: str, limit: Limit) -> Decimal:
    """``value`` as an exact Decimal within ``limit`` (else ``InvalidInput``)."""
    result = _parse(value, what, percent=limit.percent)
    if limit.whole and result != result.to_integral_value():
        raise InvalidInput(f"{what} must be a whole number, got {_show(value)}")
    if result < limit.low or result > limit.high:
        low, high = _bound(limit.low, limit.percent), _bound(limit.high, limit.percent)
        side = "at least" if result < limit.low else "at most"
        bound = low if result < limit.low else high
        raise InvalidInput(f"{what} must be {side} {bound} (accepted: {low} to {high}), got {_show(value)}")
    return result


def whole(value: object, what: str, limit: Limit) -> int:
    """An integer input (token counts, image counts)."""
    return int(number(value, what, Limit(limit.low, limit.high, limit.percent, whole=True)))


def days_per_month(value: object) -> Decimal:
    """'calendar' (30), 'working' (22) or a number of billable days in a month."""
    if isinstance(value, str) and value.strip().lower() in ("calendar", "working"):
        return CALENDAR_DAYS if value.strip().lower() == "calendar" else WORKING_DAYS
    return number(value, "days per month ('calendar', 'working' or a number)", DAYS_PER_MONTH)


def round_tokens(value: Decimal) -> int:
    """Average token counts are whole tokens, rounded half up."""
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def _parse(value: object, what: str, *, percent: bool) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{what} must be a number, got {_show(value)}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = _decimal(repr(value), what, value)
    elif isinstance(value, str):
        text = value.strip().replace("_", "").replace(",", "")
        if percent and text.endswith("%"):
            result = _decimal(text[:-1].strip(), what, value) / 100
        else:
            result = _decimal(text, what, value)
    else:
        raise InvalidInput(f"{what} must be a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidInput(f"{what} must be a finite number, got {_show(value)}")
    return result


def _decimal(text: str, what: str, original: object) -> Decimal:
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
        hint = " (a fraction such as 0.2 or a percentage such as '20%')" if "%" in str(original) else ""
        raise InvalidInput(f"{what} must be a number{hint}, got {_show(original)}") from None


def _bound(value: Decimal, percent: bool) -> str:
    if percent:
        return f"{(value * 100).normalize():f}%"
    return f"{value.normalize():,f}"


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


_PICO: Final = Decimal("1e-12")


def settle(value: Decimal, quantum: Decimal = _PICO) -> Decimal:
    """A quotient cut to ``quantum`` (default one picodollar, kakin's storage unit), half up.
    Products stay exact; only divisions and square roots, which do not terminate, are cut."""
    if value.is_finite() and value.as_tuple().exponent < quantum.as_tuple().exponent:  # type: ignore[operator]
        return value.quantize(quantum, rounding=ROUND_HALF_UP)
    return value
