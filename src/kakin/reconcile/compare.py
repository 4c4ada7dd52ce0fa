"""The provider's bill beside kakin's metering, per UTC day × model × unit, with a verdict.

A line *matches* when its cost, and its tokens where the bill counts them, agree within the
tolerance: ``max(absolute, relative × the larger side)`` ($0.01 or 1 % by default for money,
1 % for tokens). Otherwise the provider is higher, kakin is higher, or one side has nothing.

Differences with a known, benign cause are labelled rather than flagged:

* ``lag`` — on the last day(s) the bill covers the provider has less than kakin: its figures
  for recent hours are not final yet;
* ``day_boundary`` — one day's difference is undone by the next day's (same model and unit):
  requests near midnight counted on either side of it, or a report in another day than UTC;
* ``credit``, ``rounding``, ``adjustment``, ``tax`` — the provider's own corrections, shown and
  never compared (kakin's cost is before credits, as the bill's ``cost`` is);
* ``outside_kakin`` — a provider project or workspace not among the accounts kakin's traffic
  uses (when they are given): traffic that did not pass through kakin.

Every other difference is *flagged*.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final, Literal

from kakin.errors import InvalidInput, NotFound
from kakin.ledger import Ledger
from kakin.money import from_pico
from kakin.reconcile.bills import BillLine
from kakin.reconcile.mapping import PROVIDERS, UNITS, line_items
from kakin.reconcile.metered import metered
from kakin.reconcile.store import BillImport, BillStore, coverage

Verdict = Literal["match", "provider_higher", "kakin_higher", "missing_at_provider", "missing_in_kakin"]
VERDICTS: Final[tuple[Verdict, ...]] = (
    "match",
    "provider_higher",
    "kakin_higher",
    "missing_at_provider",
    "missing_in_kakin",
)
Explained = Literal["lag", "day_boundary", "credit", "rounding", "adjustment", "tax", "outside_kakin"]
VERDICT_WORDS: Final = {
    "match": "match",
    "provider_higher": "provider higher",
    "kakin_higher": "kakin higher",
    "missing_at_provider": "missing at provider",
    "missing_in_kakin": "missing in kakin",
}
EXPLAINED_WORDS: Final = {
    "lag": "data lag",
    "day_boundary": "day boundary",
    "credit": "provider credit",
    "rounding": "rounding row",
    "adjustment": "adjustment",
    "tax": "tax",
    "outside_kakin": "outside kakin",
}
USAGE_FORMATS: Final = frozenset({"openai.usage", "anthropic.usage_report"})
"""Exports that count tokens and no money: the days they cover are not billed days."""
TOKEN_UNITS: Final = frozenset({"input", "cached_input", "cache_write", "output"})
_UNIT_ORDER: Final = {unit: n for n, unit in enumerate(UNITS)}


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far apart two figures may be and still match."""

    cost: Decimal = Decimal("0.01")  # USD per line
    relative: Decimal = Decimal("0.01")  # of the larger side, for money and tokens

    def __post_init__(self) -> None:
        if self.cost < 0 or not 0 <= self.relative < 1:
            raise InvalidInput("the tolerance is an amount ≥ 0 and a share in [0, 1)")

    def money(self, a: Decimal, b: Decimal) -> bool:
        return abs(a - b) <= max(self.cost, self.relative * max(abs(a), abs(b)))

    def tokens(self, a: int, b: int) -> bool:
        return abs(a - b) <= self.relative * max(a, b)

    def describe(self) -> str:
        share = f"{(self.relative * 100).normalize():f}%"
        return f"${self.cost} or {share} of the larger side; tokens within {share}"


@dataclass(frozen=True, slots=True)
class Line:
    """One UTC day × model × unit: kakin's figures, the bill's, and the verdict."""

    day: date
    model: str | None
    unit: str
    kind: str  # "usage", or the provider's correction: credit, rounding, adjustment, tax
    accounts: tuple[str, ...]  # the provider's projects / workspaces on the bill's side
    line_items: tuple[str, ...]  # the bill's own words for it
    kakin_cost: Decimal
    provider_cost: Decimal | None  # None: the bill has no cost for it (a usage report)
    kakin_tokens: int | None  # None for units not counted in tokens
    provider_tokens: int | None  # None: the bill does not count them
    verdict: Verdict
    explained: Explained | None = None

    @property
    def cost_difference(self) -> Decimal | None:
        """The provider's cost less kakin's."""
        return None if self.provider_cost is None else self.provider_cost - self.kakin_cost

    @property
    def token_difference(self) -> int | None:
        if self.provider_tokens is None or self.kakin_tokens is None:
            return None
        return self.provider_tokens - self.kakin_tokens

    @property
    def flagged(self) -> bool:
        return self.verdict != "match" and self.explained is None

    def row(self) -> dict[str, Any]:
        """The line as a table row, verdict and explanation in words (the CLI's and the
        dashboard's tables)."""
        return {
            "day": self.day.isoformat(),
            "model": self.model or "—",
            "unit": self.unit,
            "kakin_tokens": self.kakin_tokens,
            "provider_tokens": self.provider_tokens,
            "kakin_cost": self.kakin_cost,
            "provider_cost": self.provider_cost,
            "difference": self.cost_difference,
            "verdict": VERDICT_WORDS[self.verdict] if self.kind == "usage" else self.kind,
            "explained": EXPLAINED_WORDS[self.explained] if self.explained else None,
            "flagged": self.flagged,
        }


@dataclass(frozen=True, slots=True)
class UnitTotal:
    """One unit over the whole period (compared lines only)."""

    unit: str
    kakin_cost: Decimal
    provider_cost: Decimal
    kakin_tokens: int | None
    provider_tokens: int | None


@dataclass(frozen=True, slots=True)
class Reconciliation:
    org_id: str
    org_name: str
    provider: str
    start: date  # first UTC day compared
    end: date  # the day after the last
    tolerance: Tolerance
    accounts: tuple[str, ...]  # provider accounts kakin's traffic uses; () = all of them
    kakin_providers: tuple[str, ...]
    lines: tuple[Line, ...]
    units: tuple[UnitTotal, ...]
    imports: tuple[BillImport, ...]
    lag_days: int = 1
    totals: dict[str, Decimal] = field(default_factory=dict)

    @property
    def flagged(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.flagged)


class Reconciler:
    """Compares imported bills with the ledger's metering."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.store = BillStore(ledger)

    def compare(
        self,
        org: str,
        provider: str,
        *,
        start: date | str | None = None,
        end: date | str | None = None,
        tolerance: Tolerance | None = None,
        accounts: Sequence[str] = (),
        lag_days: int = 1,
    ) -> Reconciliation:
        """``org``'s imported ``provider`` bills over UTC days ``[start, end)`` (default: all the
        days they cover) beside kakin's metering (see the module docstring)."""
        if provider not in PROVIDERS:
            raise InvalidInput(f"the provider is one of {', '.join(PROVIDERS)}, not {provider!r}")
        if not 0 <= lag_days <= 7:
            raise InvalidInput("lag days are between 0 and 7")
        tolerance = tolerance or Tolerance()
        record = self.ledger.get_org(org)
        imports = self.store.imports(record.id, provider)
        covered = coverage(imports)
        if covered is None:
            raise NotFound(
                f"no {provider} bill imported into {record.name!r} "
                f"(import one with `kakin reconcile import FILE --provider {provider}`)"
            )
        first = max(_day(start, "start") or covered[0], covered[0])
        after = min(_day(end, "end") or covered[1], covered[1])
        if after <= first:
            raise InvalidInput(
                f"the {provider} bills cover {covered[0]} to {covered[1] - timedelta(days=1)}; "
                "nothing of that is in the period asked for"
            )
        mapping = line_items()
        kakin_providers = mapping.kakin_providers(provider)  # type: ignore[arg-type]
        ours = metered(self.ledger, record.id, kakin_providers, first, after, mapping.model_key)
        theirs = self.store.lines(record.id, provider, first, after)
        wanted = tuple(sorted({a.strip() for a in accounts if a and a.strip()}))
        cost_days = _days(i for i in imports if i.format not in USAGE_FORMATS)
        covered_days = _days(imports)  # bills of March and of May say nothing about April
        ours = {key: value for key, value in ours.items() if key[0] in covered_days}
        compared, aside = _lines(ours, theirs, tolerance, set(wanted), cost_days)
        lines = _explain(compared, tolerance, covered[1], lag_days) + aside
        lines.sort(key=lambda x: (x.day, x.model or "", _UNIT_ORDER.get(x.unit, 99), x.kind, x.accounts))
        return Reconciliation(
            org_id=record.id,
            org_name=record.name,
            provider=provider,
            start=first,
            end=after,
            tolerance=tolerance,
            accounts=wanted,
            kakin_providers=tuple(kakin_providers),
            lines=tuple(lines),
            units=_units(lines),
            imports=tuple(imports),
            lag_days=lag_days,
            totals=_totals(lines),
        )


def _days(imports: Iterable[BillImport]) -> set[date]:
    """The UTC days some of ``imports`` cover."""
    return {i.start_day + timedelta(days=n) for i in imports for n in range((i.end_day - i.start_day).days)}


def _day(value: date | str | None, what: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"the {what} is a UTC day, YYYY-MM-DD; not {value!r}") from None


class _Side:
    """The bill's lines that fall on one comparison line."""

    __slots__ = ("accounts", "cost", "cost_tokens", "items", "usage_tokens")

    def __init__(self) -> None:
        self.accounts: set[str] = set()
        self.items: set[str] = set()
        self.cost: Decimal | None = None
        self.usage_tokens: int | None = None  # from a usage report: preferred
        self.cost_tokens: int | None = None  # quantities on cost rows

    def add(self, line: BillLine) -> None:
        self.accounts.add(line.account)
        self.items.add(line.line_item)
        if line.cost is not None:
            self.cost = (self.cost or Decimal(0)) + line.cost
        if line.tokens is not None:
            if line.report == "usage":
                self.usage_tokens = (self.usage_tokens or 0) + line.tokens
            else:
                self.cost_tokens = (self.cost_tokens or 0) + line.tokens

    @property
    def tokens(self) -> int | None:
        return self.usage_tokens if self.usage_tokens is not None else self.cost_tokens


def _lines(
    ours: dict[tuple[date, str, str], list[int]],
    theirs: list[BillLine],
    tolerance: Tolerance,
    accounts: set[str],
    cost_days: set[date],
) -> tuple[list[Line], list[Line]]:
    """The compared lines, and the lines set aside (corrections, traffic outside kakin)."""
    compared: dict[tuple[Any, ...], _Side] = defaultdict(_Side)
    aside: dict[tuple[Any, ...], _Side] = defaultdict(_Side)  # corrections and outside traffic
    for line in theirs:
        if line.kind != "usage":
            aside[(line.day, line.model, line.unit, line.kind, "")].add(line)
        elif accounts and line.account not in accounts:
            aside[(line.day, line.model, line.unit, "usage", line.account)].add(line)
        else:
            compared[(line.day, line.model, line.unit)].add(line)
    found: list[Line] = []
    for key in compared.keys() | ours.keys():
        day, model, unit = key
        side = compared.get(key)
        pico, tokens = ours.get(key, (0, 0))  # type: ignore[arg-type]
        kakin_cost = from_pico(pico)
        kakin_tokens = tokens if unit in TOKEN_UNITS else None
        provider_cost = side.cost if side else None
        provider_tokens = side.tokens if side and unit in TOKEN_UNITS else None
        priced = day in cost_days  # a cost export covers the day: no cost line there is a cost of 0
        if side is None or (provider_cost is None and priced):  # nothing billed: compared as zero
            verdict = _verdict(
                key in ours, False, kakin_cost, Decimal(0), kakin_tokens, provider_tokens or 0, tolerance
            )
        else:
            verdict = _verdict(
                key in ours, True, kakin_cost, provider_cost, kakin_tokens, provider_tokens, tolerance
            )
        found.append(
            Line(
                day,
                model,
                unit,
                "usage",
                tuple(sorted(side.accounts)) if side else (),
                tuple(sorted(side.items)) if side else (),
                kakin_cost,
                provider_cost,
                kakin_tokens,
                provider_tokens,
                verdict,
            )
        )
    apart: list[Line] = []
    for (day, model, unit, kind, account), side in aside.items():
        cost = side.cost if side.cost is not None else Decimal(0)
        tokens = side.tokens if unit in TOKEN_UNITS else None
        verdict = _verdict(False, True, Decimal(0), cost, None, tokens, tolerance)
        label: Explained = "outside_kakin" if kind == "usage" else kind  # type: ignore[assignment]
        apart.append(
            Line(
                day,
                model,
                unit,
                kind,
                tuple(sorted(side.accounts)) if account else (),
                tuple(sorted(side.items)),
                Decimal(0),
                side.cost,
                None,
                tokens,
                verdict,
                label,
            )
        )
    return found, apart


def _verdict(
    metered_it: bool,
    billed_it: bool,
    kakin_cost: Decimal,
    provider_cost: Decimal | None,
    kakin_tokens: int | None,
    provider_tokens: int | None,
    tolerance: Tolerance,
) -> Verdict:
    money_ok = provider_cost is None or tolerance.money(provider_cost, kakin_cost)
    tokens_ok = (
        provider_tokens is None or kakin_tokens is None or tolerance.tokens(provider_tokens, kakin_tokens)
    )
    if money_ok and tokens_ok:
        return "match"
    if not billed_it:
        return "missing_at_provider"
    if not metered_it:
        return "missing_in_kakin"
    if not money_ok:
        assert provider_cost is not None
        return "provider_higher" if provider_cost > kakin_cost else "kakin_higher"
    assert provider_tokens is not None and kakin_tokens is not None
    return "provider_higher" if provider_tokens > kakin_tokens else "kakin_higher"


def _explain(lines: list[Line], tolerance: Tolerance, covered_end: date, lag_days: int) -> list[Line]:
    """Label the benign differences of compared lines: a day's difference undone by the next
    day's, then what the provider has not finished counting on the last days."""
    by_key = {(line.day, line.model, line.unit): n for n, line in enumerate(lines)}
    result = list(lines)
    for (day, model, unit), n in sorted(
        by_key.items(), key=lambda item: (item[0][0], str(item[0][1]), item[0][2])
    ):
        line = result[n]
        if not line.flagged:
            continue
        m = by_key.get((day + timedelta(days=1), model, unit))
        if m is None or not result[m].flagged:
            continue
        if _offsets(line, result[m], tolerance):
            result[n] = _labelled(line, "day_boundary")
            result[m] = _labelled(result[m], "day_boundary")
    lag_from = covered_end - timedelta(days=lag_days)
    for n, line in enumerate(result):
        if line.flagged and line.day >= lag_from and line.verdict in ("kakin_higher", "missing_at_provider"):
            result[n] = _labelled(line, "lag")
    return result


def _offsets(a: Line, b: Line, tolerance: Tolerance) -> bool:
    """Whether two adjacent days' differences cancel out (opposite signs, sum within tolerance)."""
    da, db = a.cost_difference, b.cost_difference
    if da is not None and db is not None and da * db < 0:
        kakin = a.kakin_cost + b.kakin_cost
        return tolerance.money(kakin + da + db, kakin)
    ta, tb = a.token_difference, b.token_difference
    if (
        ta is not None
        and tb is not None
        and ta * tb < 0
        and a.kakin_tokens is not None
        and b.kakin_tokens is not None
    ):
        kakin_tokens = a.kakin_tokens + b.kakin_tokens
        return tolerance.tokens(kakin_tokens + ta + tb, kakin_tokens)
    return False


def _labelled(line: Line, label: Explained) -> Line:
    return Line(
        line.day,
        line.model,
        line.unit,
        line.kind,
        line.accounts,
        line.line_items,
        line.kakin_cost,
        line.provider_cost,
        line.kakin_tokens,
        line.provider_tokens,
        line.verdict,
        label,
    )


def _units(lines: Sequence[Line]) -> tuple[UnitTotal, ...]:
    sums: dict[str, list[Any]] = {}
    for line in lines:
        if line.kind != "usage" or line.explained == "outside_kakin":
            continue
        total = sums.setdefault(line.unit, [Decimal(0), Decimal(0), None, None])
        total[0] += line.kakin_cost
        total[1] += line.provider_cost or 0
        if line.kakin_tokens is not None:
            total[2] = (total[2] or 0) + line.kakin_tokens
        if line.provider_tokens is not None:
            total[3] = (total[3] or 0) + line.provider_tokens
    return tuple(UnitTotal(unit, *sums[unit]) for unit in UNITS if unit in sums)


def _totals(lines: Sequence[Line]) -> dict[str, Decimal]:
    """kakin's metered cost, the bill's cost of what was compared, of traffic outside kakin,
    and of the provider's corrections (credits, rounding, adjustments, tax)."""
    totals = {
        "kakin": Decimal(0),
        "provider": Decimal(0),
        "outside_kakin": Decimal(0),
        "corrections": Decimal(0),
    }
    for line in lines:
        billed = line.provider_cost or Decimal(0)
        if line.kind != "usage":
            totals["corrections"] += billed
        elif line.explained == "outside_kakin":
            totals["outside_kakin"] += billed
        else:
            totals["kakin"] += line.kakin_cost
            totals["provider"] += billed
    return totals
