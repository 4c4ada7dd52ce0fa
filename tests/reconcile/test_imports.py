"""Importing bills: exact amounts, errors that name the line or field and import nothing,
the same file twice changing nothing (also when imported at once by several processes), and
each organisation seeing only its own bills."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from kakin.errors import NotFound
from kakin.ledger import Ledger
from kakin.reconcile import BillFormatError, BillStore, Reconciler, parse_bill
from kakin.reconcile.schema import provider_bill_imports, provider_bill_lines

from .conftest import sample


def stored(ledger: Ledger) -> tuple[int, int]:
    def count(conn):  # type: ignore[no-untyped-def]
        imports = conn.execute(select(func.count()).select_from(provider_bill_imports)).scalar()
        lines = conn.execute(select(func.count()).select_from(provider_bill_lines)).scalar()
        return imports, lines

    return ledger.read(count)


def openai_page(*results: dict, start: int = 1772323200) -> bytes:  # type: ignore[type-arg]
    bucket = {"object": "bucket", "start_time": start, "end_time": start + 86400, "results": list(results)}
    return json.dumps({"object": "page", "data": [bucket], "has_more": False, "next_page": None}).encode()


def cost(value: object, item: str = "gpt-4o-2024-08-06, input") -> dict:  # type: ignore[type-arg]
    return {
        "object": "organization.costs.result",
        "amount": {"value": value, "currency": "usd"},
        "line_item": item,
    }


def test_amounts_are_exact_decimals() -> None:
    # 0.1 + 0.2 in floats is 0.30000000000000004; read as decimals it is 0.3.
    bill = parse_bill(
        "openai", openai_page(cost(0.1), cost(0.2), cost("0.00000000000000001", "gpt-4o, output"))
    )
    amounts = {line.unit: line.cost for line in bill.lines}
    assert amounts == {"input": Decimal("0.3"), "output": Decimal("1E-17")}
    cents = b'{"data": [{"starting_at": "2026-03-01T00:00:00Z", "ending_at": "2026-03-02T00:00:00Z", "results": [{"amount": "123.45", "currency": "USD", "cost_type": "tokens", "token_type": "output_tokens", "model": "claude-sonnet-4-20250514"}]}]}'
    (line,) = parse_bill("anthropic", cents).lines
    assert line.cost == Decimal("1.2345")  # Anthropic's amounts are cents


def test_google_console_table_and_bigquery_csv() -> None:
    console = parse_bill("google", sample("google_console_costs.csv"), "costs.csv")
    assert (console.format, console.rows, console.skipped) == (
        "google.console_csv",
        5,
        1,
    )  # "Total" not a row
    by_kind = {(line.kind, line.unit): line.cost for line in console.lines}
    assert by_kind == {
        ("usage", "input"): Decimal("0.300000"),
        ("usage", "cached_input"): Decimal("0.075000"),  # the unrounded cost, not the table's 0.08
        ("usage", "output"): Decimal("0.500000"),
        ("credit", "input"): Decimal("-0.05"),
        ("rounding", "other"): Decimal("-0.005000"),
    }
    csv_export = parse_bill("google", sample("google_billing_export.csv"), "export.csv")
    jsonl = parse_bill("google", sample("google_billing_export.jsonl"), "export.jsonl")
    first_day = [line for line in jsonl.lines if line.day == jsonl.start]
    assert csv_export.format == "google.bigquery_csv" and csv_export.skipped == 1
    assert list(csv_export.lines) == first_day  # the same rows, read from either shape


BAD = [
    ("openai", b'{"data": [\n {"start_time": 1772323200,\n', r"line 3, column \d+"),
    (
        "openai",
        openai_page(cost(1), cost("abc")),
        r"page 1, data\[0\]\.results\[1\]\.amount\.value: 'abc' is not an amount",
    ),
    (
        "openai",
        openai_page({"amount": {"value": 1, "currency": "eur"}, "line_item": "x"}),
        r"results\[0\]\.amount\.currency: the currency is 'eur'",
    ),
    (
        "openai",
        openai_page({"amount": {"value": 1, "currency": "usd"}, "line_item": None}),
        r"grouped by line item",
    ),
    ("openai", openai_page(cost(1), start=1772323200 + 3600), r"is not one UTC day"),
    (
        "anthropic",
        b'{"data": [{"starting_at": "2026-03-01T00:00:00Z", "ending_at": "2026-03-02T00:00:00Z", "results": [{"amount": "1", "currency": "EUR", "cost_type": "tokens"}]}]}',
        r"data\[0\]\.results\[0\]\.currency",
    ),
    (
        "anthropic",
        b'{"data": [{"starting_at": "2026-03-01T00:00:00Z", "ending_at": "2026-03-02T00:00:00Z", "results": [{"uncached_input_tokens": -5, "output_tokens": 1, "model": "claude"}]}]}',
        r"uncached_input_tokens: -5 is not a token count",
    ),
    ("anthropic", b'[{"data": []}, {"nodata": 1}]', r"page 2 is not an API page"),
    (
        "google",
        b'{"service": {"description": "Gemini API"}, "cost": 1, "currency": "USD", "usage_start_time": "2026-03-01T00:00:00Z"}\n\n{"cost": NaN}\n',
        r"line 3: .*NaN is not an amount",
    ),
    (
        "google",
        b'{"service": {"description": "Gemini API"}, "sku": {"description": "Gemini 2.5 Flash Input token count"}, "cost": "1,2x", "currency": "USD", "usage_start_time": "2026-03-01T00:00:00Z"}\n',
        r"line 1, cost: '1,2x' is not an amount",
    ),
    (
        "google",
        b'{"service": {"description": "Gemini API"}, "cost": 1, "currency": "JPY", "usage_start_time": "2026-03-01T00:00:00Z"}\n',
        r"line 1, currency: the currency is 'JPY'",
    ),
    (
        "google",
        sample("google_console_costs.csv").replace(b"count,0.500000,0.50,,", b"count,0.500000,0.50,,,9"),
        r"line 10 has 18 cells",
    ),
    ("google", b"a,b\n1,2\n", r"not a Cloud Billing export"),
    ("openai", b"\xff\xfe", r"line 1 is not UTF-8"),
]


@pytest.mark.parametrize(("provider", "data", "message"), BAD)
def test_a_malformed_file_names_its_fault_and_imports_nothing(
    ledger: Ledger, acme: str, provider: str, data: bytes, message: str
) -> None:
    with pytest.raises(BillFormatError, match=message):
        BillStore(ledger).import_bill(acme, provider, data)
    assert stored(ledger) == (0, 0)


def test_the_same_file_twice_changes_nothing_and_a_restated_day_replaces_its_lines(
    ledger: Ledger, acme: str
) -> None:
    store = BillStore(ledger)
    first = store.import_bill(acme, "openai", sample("openai_costs.json"), "costs.json")
    assert first.new and (first.rows, first.lines) == (19, 19)
    before = stored(ledger)
    again = store.import_bill(acme, "openai", sample("openai_costs.json"), "renamed.json")
    assert (again.new, again.id, again.filename) == (False, first.id, "costs.json")
    assert stored(ledger) == before == (1, 19)
    # A later export restating 03-01's input line replaces it; no line is counted twice.
    restated = openai_page({**cost("2.50"), "project_id": "proj_kakin"})
    store.import_bill(acme, "openai", restated, "restated.json")
    assert stored(ledger) == (2, 19)
    line = next(
        x for x in Reconciler(ledger).compare(acme, "openai").lines if (x.day.day, x.unit) == (1, "input")
    )
    assert (line.provider_cost, line.verdict) == (Decimal("2.50"), "provider_higher")


RESTATED = sample("anthropic_cost_report.json").replace(b'"90.0"', b'"91.0"', 1)  # another export, same lines


def _import_in_another_process(url: str, org: str, data: bytes) -> tuple[str, bool]:
    with Ledger.open(url) as ledger:
        done = BillStore(ledger).import_bill(org, "anthropic", data)
        return done.id, done.new


def test_processes_importing_at_once_import_each_file_once(ledger: Ledger, acme: str, db_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    files = [sample("anthropic_cost_report.json")] * 3 + [RESTATED] * 2
    with ProcessPoolExecutor(5, mp_context=context) as pool:
        results = list(pool.map(_import_in_another_process, [db_url] * 5, [acme] * 5, files))
    assert len({import_id for import_id, _ in results}) == 2
    assert sorted(new for _, new in results) == [False, False, False, True, True]
    assert stored(ledger) == (2, 28)  # the restated export replaced lines, added none


def test_an_organisation_sees_only_its_own_bills(ledger: Ledger, acme: str) -> None:
    other = ledger.create_org("other", timezone="UTC")
    store = BillStore(ledger)
    store.import_bill(acme, "google", sample("google_billing_export.jsonl"))
    with pytest.raises(NotFound):
        Reconciler(ledger).compare(other.id, "google")
    assert store.imports(other.id) == []
    # The same file in another organisation is an import of its own.
    assert store.import_bill(other.id, "google", sample("google_billing_export.jsonl")).new
    assert [i.org_id for i in store.imports(acme)] == [acme]
    assert all(line.kakin_cost == 0 for line in Reconciler(ledger).compare(other.id, "google").lines)
