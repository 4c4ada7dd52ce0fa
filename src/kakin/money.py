"""Exact money.

Amounts are ``Decimal`` US dollars everywhere in kakin; nothing rounds until a figure is
displayed or written on an invoice line. Storage uses integer *picodollars* (10⁻¹² USD):
the cheapest catalogued token costs thousands of them, so one token is always representable,
and integers sum exactly in both SQLite and PostgreSQL.

Other currencies are for display only, converted at a configured rate that is shown with
the figure ("¥1,234 at 150 JPY/USD").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from typing import Final

USD: Final = "USD"
PICO_PER_USD: Final = 10**12
_PICO: Final = Decimal(1).scaleb(-12)

# Enough precision that no price × quantity in kakin ever rounds (28 digits would do for
# realistic inputs; 60 leaves room for absurd-but-valid ones such as 10⁹ tokens × tiny rates).
EXACT: Final = Context(prec=60, rounding=ROUND_HALF_EVEN)

# ISO 4217 minor units for the currencies people ask for most; others default to 2.
_MINOR_UNITS: Final = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "BHD": 3, "KWD": 3}
_SYMBOLS: Final = {"USD": "$", "JPY": "¥", "EUR": "€", "GBP": "£", "CNY": "CN¥", "KRW": "₩", "INR": "₹"}


class MoneyError(ValueError):
    """An amount or rate that cannot be used (negative, not a number, unknown currency)."""


def to_decimal(value: object, *, what: str = "amount", allow_negative: bool = False) -> Decimal:
    """Parse a user-supplied number exactly. Floats are refused: they are already inexact."""
    if isinstance(value, bool | float):
        raise MoneyError(f"{what} must be given as a decimal string or integer, not a float ({value!r})")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value).strip().replace("_", ""))
    except (InvalidOperation, ValueError):
        raise MoneyError(f"{what} is not a number: {value!r}") from None
    if not result.is_finite():
        raise MoneyError(f"{what} must be a finite number, got {value!r}")
    if result < 0 and not allow_negative:
        raise MoneyError(f"{what} must not be negative, got {value!r}")
    return result


def to_pico(amount: Decimal) -> int:
    """USD → integer picodollars. Exact for every catalogued price; a sub-pico remainder
    (only possible with hand-written override prices of more than 6 decimals per token)
    rounds half-even, which is the only rounding storage ever does."""
    with localcontext(EXACT):
        return int((amount * PICO_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_pico(pico: int) -> Decimal:
    """Integer picodollars → exact USD."""
    return Decimal(pico).scaleb(-12)


@dataclass(frozen=True, slots=True)
class FxRate:
    """Units of ``currency`` per 1 USD, as configured (never fetched)."""

    currency: str
    per_usd: Decimal
    source: str = "configured"

    def convert(self, usd: Decimal) -> Decimal:
        return EXACT.multiply(usd, self.per_usd)  # no localcontext: a page converts thousands

    def describe(self) -> str:
        if self.currency == USD:
            return "USD"
        return f"{_plain(self.per_usd)} {self.currency}/USD ({self.source})"


USD_RATE: Final = FxRate(USD, Decimal(1), "native")

# Used only when nothing is configured, and always labelled as such next to the figure.
DEFAULT_RATES: Final = {"JPY": Decimal("150")}


def fx_rate(currency: str, rates: dict[str, Decimal] | None = None) -> FxRate:
    """Look up the display rate for ``currency``.

    Order: explicit ``rates`` (from kakin.toml), then ``KAKIN_FX_<CUR>`` environment variable,
    then kakin's labelled default (JPY only)."""
    code = currency.strip().upper()
    if code == USD:
        return USD_RATE
    if not (len(code) == 3 and code.isalpha()):
        raise MoneyError(f"currency must be a 3-letter ISO code such as USD or JPY, got {currency!r}")
    if rates and code in rates:
        return FxRate(code, to_decimal(rates[code], what=f"{code} rate"), "kakin.toml")
    env = os.environ.get(f"KAKIN_FX_{code}")
    if env:
        rate = to_decimal(env, what=f"KAKIN_FX_{code}")
        if rate == 0:
            raise MoneyError(f"KAKIN_FX_{code} must be positive")
        return FxRate(code, rate, f"KAKIN_FX_{code}")
    if code in DEFAULT_RATES:
        return FxRate(code, DEFAULT_RATES[code], "default; set KAKIN_FX_" + code)
    raise MoneyError(f"no exchange rate configured for {code}: set KAKIN_FX_{code}=<units per USD>")


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


def round_for_invoice(amount: Decimal, currency: str = USD) -> Decimal:
    """Round to the currency's minor unit, half-up as invoices do. The one place money rounds."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_UP, context=EXACT)


def format_amount(amount: Decimal, currency: str = USD, *, significant: int = 4) -> str:
    """Human display: the currency's minor units, or up to ``significant`` significant digits
    when those say more, so a small amount is never rounded away (¥1.4175 shows as ¥1.418, not
    ¥1; a single request's $0.00045 as $0.00045, not $0.00). Large amounts show minor units."""
    code = currency.upper()
    symbol = _SYMBOLS.get(code, code + " ")
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    places = minor_units(code)
    if value != 0 and significant - value.adjusted() - 1 > places:
        exact = _significant(value, significant)
        shown = max(places, -exact.as_tuple().exponent)
        return f"{sign}{symbol}{exact:,.{shown}f}"
    rounded = round_for_invoice(value, code)
    return f"{sign}{symbol}{rounded:,.{places}f}"


def _significant(value: Decimal, digits: int) -> Decimal:
    with localcontext(EXACT) as ctx:
        ctx.rounding = ROUND_HALF_UP
        shift = digits - value.adjusted() - 1
        return value.quantize(Decimal(1).scaleb(-shift)).normalize()


def _plain(value: Decimal) -> str:
    """Decimal as a plain string (no exponent), trailing zeros removed."""
    text = format(value.normalize(), "f")
    return text


def decimal_str(value: Decimal) -> str:
    """The JSON form of an amount: an exact decimal string without exponent."""
    if value == 0:
        return "0"
    return _plain(value)
