"""Modes: a usage is billed in the mode that served it, else the one asked for, and every
cost line says which mode's rate priced it. Rates come from the installed catalog."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kakin.catalog import Catalog
from kakin.errors import InvalidInput
from kakin.pricing import Usage, price

CATALOG = Catalog()
USAGE = {"input_tokens": 10_000, "output_tokens": 2_000}


def _dates(model: str, mode: str) -> tuple[datetime | None, datetime | None]:
    """A date when the catalog has a rate of ``mode``'s own for ``model``, and one when not."""
    with_rate = without = None
    for period in CATALOG.resolve(model, "openai").history(mode):
        start = period.effective_from or datetime(2024, 1, 1, tzinfo=UTC)
        if period.variant:
            with_rate = start
        else:
            without = start
    return with_rate, without


def test_the_mode_served_wins_over_the_mode_asked() -> None:
    at, _ = _dates("o4-mini", "priority")
    if at is None:
        pytest.skip("the catalog has no priority rate for o4-mini")
    asked = price(Usage(**USAGE), "o4-mini", at=at, mode="priority", catalog=CATALOG)
    served = price(Usage(**USAGE, mode="priority"), "o4-mini", at=at, mode="flex", catalog=CATALOG)
    standard = price(Usage(**USAGE), "o4-mini", at=at, catalog=CATALOG)
    assert served.total == asked.total != standard.total
    assert (served.mode, served.billed_mode) == ("priority", "priority")
    assert {(item.mode, item.note) for item in served.items} == {("priority", None)}
    assert price(
        Usage(**USAGE, mode="standard"), "o4-mini", at=at, mode="priority", catalog=CATALOG
    ).total == (standard.total)


def test_a_mode_without_a_rate_bills_standard_and_says_so() -> None:
    _, at = _dates("gpt-4o", "batch")
    if at is None:
        pytest.skip("the catalog has a batch rate for gpt-4o at every date")
    cost = price(Usage(**USAGE), "gpt-4o", at=at, mode="batch", catalog=CATALOG)
    assert cost.total == price(Usage(**USAGE), "gpt-4o", at=at, catalog=CATALOG).total
    assert (cost.mode, cost.billed_mode) == ("batch", "standard")
    assert all(item.mode == "standard" and "no batch rate" in (item.note or "") for item in cost.items)
    assert "no batch rate" in cost.explain().splitlines()[0]
    data = cost.to_dict()
    assert data["billed_mode"] == "standard" and data["items"][0]["mode"] == "standard"


def test_usage_mode_is_checked() -> None:
    with pytest.raises(InvalidInput, match=r"usage\.mode"):
        Usage(input_tokens=1, mode="turbo")
    with pytest.raises(InvalidInput, match="served in priority and flex"):
        Usage(input_tokens=1, mode="priority") + Usage(input_tokens=1, mode="flex")
    assert (Usage(input_tokens=1, mode="flex") + Usage(output_tokens=1)).mode == "flex"
