"""How amounts read on screens: never rounded away, never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kakin.money import format_amount


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("0.00045", "USD", "$0.00045"),  # one request's cost is not $0.00
        ("0.0152", "USD", "$0.0152"),  # a month of tests is not "$0.02"
        ("1.4175", "JPY", "¥1.418"),  # not ¥1: the yen has no minor unit, small sums still show
        ("0.7425", "JPY", "¥0.7425"),
        ("1.5", "USD", "$1.50"),
        ("1234.5678", "USD", "$1,234.57"),
        ("1499", "JPY", "¥1,499"),
        ("0", "USD", "$0.00"),
        ("-0.0152", "USD", "-$0.0152"),
    ],
)
def test_amounts_show_minor_units_or_four_significant_digits(amount: str, currency: str, shown: str) -> None:
    assert format_amount(Decimal(amount), currency) == shown
