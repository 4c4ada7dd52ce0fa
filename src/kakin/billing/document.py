"""The invoice and credit-note documents: what is shown, exported, hashed and stored.

A document is plain data. Money is exact: integer picodollars here, decimal USD strings in
JSON (``kakin.money.decimal_str``); display amounts are derived from them at the rate the
document records. An issued document is stored as its canonical JSON (sorted keys, no
whitespace) with that text's SHA-256 (:func:`canonical`, :func:`content_hash`), and read back
with :meth:`Invoice.from_dict` — never rebuilt from the ledger.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

import orjson

from kakin.money import FxRate, from_pico, round_for_invoice

SECTIONS = ("current", "prior")  # this cycle's usage; charges posted late for earlier cycles


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    address: str = ""
    email: str = ""
    registration: str = ""
    reference: str = ""  # the recipient's organisation id


@dataclass(frozen=True, slots=True)
class Line:
    """One line: usage of one model in one unit at one price (quantity × unit price)."""

    section: str  # current | prior
    month: str  # the cycle the usage belongs to (an earlier one for a prior-period line)
    model: str
    unit: str  # report unit (kakin.ledger.rollups.UNITS): input, cached_input, … images, audio
    component: str  # as priced: input, cache_read, output, image 1024x1024 high, audio…
    measure: str  # what the quantity counts: token, image, second, request
    quantity: Decimal
    unit_price: Decimal | None  # USD per unit; None for usage its price lines do not explain
    amount_pico: int
    tier: str | None
    mode: str
    price_source: str
    effective_from: str | None  # the date the price took effect (ISO), None: earliest known
    requests: int  # requests that contributed to the line

    @property
    def amount(self) -> Decimal:
        return from_pico(self.amount_pico)


@dataclass(frozen=True, slots=True)
class CreditApplied:
    """What one grant paid of the invoice's charges."""

    grant_id: str
    kind: str  # free_trial | welcome | promotional | prepaid
    note: str
    amount_pico: int

    @property
    def amount(self) -> Decimal:
        return from_pico(self.amount_pico)


@dataclass(frozen=True, slots=True)
class Display:
    """The currency the recipient reads, at the rate recorded on the document."""

    currency: str
    per_usd: Decimal
    source: str

    @property
    def rate(self) -> FxRate:
        return FxRate(self.currency, self.per_usd, self.source)

    def convert(self, pico: int) -> Decimal:
        """An amount in the display currency, rounded to its minor unit (half up)."""
        return round_for_invoice(self.rate.convert(from_pico(pico)), self.currency)


@dataclass(frozen=True, slots=True)
class Invoice:
    status: str  # draft | issued
    id: str | None  # None for a draft
    number: str | None  # None for a draft
    org_id: str
    month: str
    timezone: str
    cycle_start: str  # local ISO instants
    cycle_end: str
    issued_at: str | None  # UTC ISO; None for a draft
    as_of: str  # UTC ISO: when the figures were read (the issue instant once issued)
    due_date: str | None  # local date; None for a draft
    issuer: Party
    recipient: Party
    display: Display
    lines: tuple[Line, ...]
    credits: tuple[CreditApplied, ...]
    charges_pico: int  # Σ lines = the ledger's charges for the usage covered
    credits_pico: int  # Σ credits
    due_pico: int  # postpaid: charges − credits
    requests: int
    through_usage_id: int  # usage records covered: see kakin.billing.snapshot
    after_usage_id: int
    tax_note: str = "Amounts exclude tax."
    currency: str = "USD"

    @property
    def charges(self) -> Decimal:
        return from_pico(self.charges_pico)

    @property
    def credits_total(self) -> Decimal:
        return from_pico(self.credits_pico)

    @property
    def due(self) -> Decimal:
        return from_pico(self.due_pico)

    @property
    def payable(self) -> Decimal:
        """The amount due in USD rounded to the cent (half up): what is paid."""
        return round_for_invoice(self.due, self.currency)

    def lines_in(self, section: str) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.section == section)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _INVOICE_FIELDS}
        data["issuer"], data["recipient"] = asdict(self.issuer), asdict(self.recipient)
        data["display"] = {
            "currency": self.display.currency,
            "per_usd": self.display.per_usd,
            "source": self.display.source,
        }
        data["lines"] = [{name: getattr(line, name) for name in _LINE_FIELDS} for line in self.lines]
        data["credits"] = [asdict(credit) for credit in self.credits]
        return _plain(data)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Invoice:
        values = dict(data)
        values["issuer"] = Party(**data["issuer"])
        values["recipient"] = Party(**data["recipient"])
        values["display"] = Display(
            data["display"]["currency"], Decimal(data["display"]["per_usd"]), data["display"]["source"]
        )
        values["lines"] = tuple(_line(item) for item in data["lines"])
        values["credits"] = tuple(CreditApplied(**item) for item in data["credits"])
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


_INVOICE_FIELDS = tuple(f.name for f in fields(Invoice))
_LINE_FIELDS = tuple(f.name for f in fields(Line))


def _line(data: dict[str, Any]) -> Line:
    values = dict(data)
    values["quantity"] = Decimal(data["quantity"])
    values["unit_price"] = None if data["unit_price"] is None else Decimal(data["unit_price"])
    return Line(**values)


@dataclass(frozen=True, slots=True)
class CreditNote:
    id: str
    number: str
    org_id: str
    invoice_id: str
    invoice_number: str
    issued_at: str  # UTC ISO
    issuer: Party
    recipient: Party
    display: Display
    reason: str
    settlement: str  # credit (given back as ledger credit) | refund (paid back)
    amount_pico: int
    line: int | None = None  # the invoice line it corrects (1-based), if any
    quantity: Decimal | None = None  # of that line
    # A "credit" settlement is given back as promotional credit in the ledger: the grant's
    # idempotency key, so the document names it before the grant exists.
    credit_key: str | None = None

    @property
    def amount(self) -> Decimal:
        return from_pico(self.amount_pico)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CreditNote:
        values = dict(data)
        values["issuer"] = Party(**data["issuer"])
        values["recipient"] = Party(**data["recipient"])
        values["display"] = Display(
            data["display"]["currency"], Decimal(data["display"]["per_usd"]), data["display"]["source"]
        )
        values["quantity"] = None if data.get("quantity") is None else Decimal(data["quantity"])
        return cls(**values)


def _plain(value: Any) -> Any:
    """Values JSON can hold exactly: Decimals as plain decimal strings."""
    kind = type(value)
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    if kind is Decimal:
        return format(value, "f")
    return value


def canonical(document: dict[str, Any]) -> str:
    """The stored text of a document: JSON with sorted keys and no whitespace."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
