"""kakin's own side of a bill: metered cost and tokens per UTC day × model × unit.

Bills are per UTC day; kakin's rollups are per local hour of the organisation
(:mod:`kakin.ledger.rollups`). An hour of a whole-hour offset lies inside one UTC day, so the
hour rollups are added up by the UTC day they start in. An hour of a half- or quarter-hour
offset (Asia/Kolkata, Australia/Adelaide…) that spans UTC midnight is split by reading its
usage records with the same function that rolled them up. Reasoning tokens and their money
count as output, as every provider bills them.

The rollups do not keep the provider: a model's traffic belongs to a bill when the latest
usage record of that model in the period was served by one of the bill's kakin providers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from operator import add
from typing import Final

from sqlalchemy import Connection, func, select

from kakin.ledger import Ledger
from kakin.ledger import rollups as r
from kakin.ledger import schema as s

Key = tuple[date, str, str]  # UTC day, model key, unit
Measures = list[int]  # [picodollars, tokens]

_MONEY: Final = {  # unit → the rollup money columns it adds up
    "input": ("input_pico",),
    "cached_input": ("cached_input_pico",),
    "cache_write": ("cache_write_pico",),
    "output": ("output_pico", "reasoning_pico"),
    "images": ("images_pico",),
    "audio": ("audio_pico",),
    "requests": ("requests_pico",),
    "other": ("other_pico",),
}
_TOKENS: Final = {  # token units → the rollup counts of their tokens
    "input": ("input_tokens",),
    "cached_input": ("cached_tokens",),
    "cache_write": ("cache_write_tokens",),
    "output": ("output_tokens", "reasoning_tokens"),
}
_COLUMNS: Final = tuple(dict.fromkeys(c for unit in _MONEY for c in (*_MONEY[unit], *_TOKENS.get(unit, ()))))
"""The rollup columns read, in this order."""
_AT: Final = {name: i for i, name in enumerate(_COLUMNS)}
_PLAN: Final = tuple(
    (unit, tuple(_AT[c] for c in _MONEY[unit]), tuple(_AT[c] for c in _TOKENS.get(unit, ())))
    for unit in _MONEY
)
_MEASURE_AT: Final = tuple(r.MEASURES.index(c) for c in _COLUMNS)
_HOUR: Final = timedelta(hours=1)


def metered(
    ledger: Ledger,
    org_id: str,
    kakin_providers: Sequence[str],
    start: date,
    end: date,
    model_key: Callable[[str], str],
) -> dict[Key, Measures]:
    """Metered money and tokens of ``org_id`` per UTC day in ``[start, end)``, model key and
    unit, for the models served by ``kakin_providers``."""
    begin = datetime.combine(start, time(0), UTC)
    finish = datetime.combine(end, time(0), UTC)
    h = s.rollup_hours
    # Keys and projects summed by the database: one row per hour and model.
    query = (
        select(h.c.start, h.c.model, *(func.sum(h.c[name]) for name in _COLUMNS))
        .where(h.c.org_id == org_id, h.c.start >= begin - _HOUR, h.c.start < finish)
        .group_by(h.c.start, h.c.model)
    )

    def read(conn: Connection) -> dict[Key, Measures]:
        served = _served_by(conn, org_id, kakin_providers, begin, finish)
        days: dict[tuple[date, str], list[int]] = {}
        split: set[datetime] = set()
        for row in conn.execute(query):
            bucket, model = row[0], row[1]
            if not served(model):
                continue
            if bucket.date() != (bucket + _HOUR - timedelta(microseconds=1)).date():
                split.add(bucket)  # a local hour across UTC midnight: read from its records
            elif begin <= bucket:
                _add(days, (bucket.date(), model), [int(v) for v in row[2:]])
        u = s.usage_records
        for bucket in sorted(split):
            records = conn.execute(
                select(u).where(
                    u.c.org_id == org_id, u.c.occurred_at >= bucket, u.c.occurred_at < bucket + _HOUR
                )
            )
            for record in records:
                values = dict(record._mapping)
                at = values["occurred_at"]
                if begin <= at < finish and served(values["model"]):
                    vector = r.measures(values)
                    _add(days, (at.date(), values["model"]), [vector[i] for i in _MEASURE_AT])
        return _by_unit(days, model_key)

    return ledger.read(read)


def _add(days: dict[tuple[date, str], list[int]], at: tuple[date, str], values: list[int]) -> None:
    known = days.get(at)
    days[at] = values if known is None else list(map(add, known, values))


def _by_unit(days: dict[tuple[date, str], list[int]], model_key: Callable[[str], str]) -> dict[Key, Measures]:
    totals: dict[Key, Measures] = defaultdict(lambda: [0, 0])
    for (day, model), values in days.items():
        key = model_key(model)
        for unit, money, tokens in _PLAN:
            pico = sum(values[i] for i in money)
            count = sum(values[i] for i in tokens)
            if pico or count:
                measures = totals[(day, key, unit)]
                measures[0] += pico
                measures[1] += count
    return dict(totals)


def _served_by(
    conn: Connection, org_id: str, providers: Sequence[str], begin: datetime, finish: datetime
) -> Callable[[str], bool]:
    """Whether a model's traffic in the period went to one of ``providers`` (its latest record
    decides; found walking the (org, time) index back from the period's end)."""
    known: dict[str, bool] = {}
    u = s.usage_records

    def served(model: str) -> bool:
        if model not in known:
            latest = conn.execute(
                select(u.c.provider)
                .where(u.c.org_id == org_id, u.c.model == model, u.c.occurred_at >= begin - _HOUR)
                .where(u.c.occurred_at < finish)
                .order_by(u.c.occurred_at.desc())
                .limit(1)
            ).scalar()
            known[model] = latest in providers
        return known[model]

    return served
